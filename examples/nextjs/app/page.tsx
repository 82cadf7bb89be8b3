import { StoryForm } from "./story-form";

export default function Page() {
  return (
    <main>
      <h1>Stories, written live by llmflow</h1>
      <StoryForm />
    </main>
  );
}
