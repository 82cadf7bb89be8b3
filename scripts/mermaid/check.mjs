// @ts-check
// Parses every Mermaid diagram in the given files with Mermaid's own parser (the one its
// renderer uses), and exits non-zero naming each file and diagram that does not parse.
// A `.md` file's ```mermaid blocks are checked, and it must have at least one; any other file
// is one diagram. Usage: node check.mjs FILE...
import { readFile } from 'node:fs/promises';
import { JSDOM } from 'jsdom';

// Mermaid sanitises labels with DOMPurify, which needs a DOM: give it one before loading it.
const dom = new JSDOM('<!doctype html><html><body></body></html>');
Object.assign(globalThis, { window: dom.window, document: dom.window.document });
const { default: mermaid } = await import('mermaid');

/**
 * The diagrams of one file.
 * @param {string} file
 * @param {string} text
 * @returns {string[]}
 */
function diagramsOf(file, text) {
  if (!file.endsWith('.md')) {
    return [text];
  }
  const blocks = [...text.matchAll(/^```mermaid\n([\s\S]*?)^```$/gm)].map((m) => m[1] ?? '');
  if (blocks.length === 0) {
    throw new Error('no ```mermaid block');
  }
  return blocks;
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node check.mjs FILE...');
  process.exit(2);
}
let failed = 0;
for (const file of files) {
  try {
    const diagrams = diagramsOf(file, await readFile(file, 'utf8'));
    for (const [i, diagram] of diagrams.entries()) {
      const parsed = await mermaid.parse(diagram);
      if (!parsed || parsed.diagramType !== 'flowchart-v2') {
        throw new Error(`diagram ${i + 1} is not a flowchart: ${JSON.stringify(parsed)}`);
      }
    }
    console.log(`ok  ${file} (${diagrams.length} flowchart${diagrams.length === 1 ? '' : 's'})`);
  } catch (error) {
    failed += 1;
    const message = error instanceof Error ? error.message : String(error);
    console.error(`FAIL ${file}: ${message}`);
  }
}
process.exit(failed === 0 ? 0 : 1);
