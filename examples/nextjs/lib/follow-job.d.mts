export function followJob(
  eventsUrl: string,
  handlers: {
    onText: (text: string) => void;
    onStatus?: (status: string) => void;
    onDone?: (event: string, data: unknown) => void;
    onError?: () => void;
  },
): () => void;
