// Server-sent events from a fetch() body: one parsed JSON object per `data:` event, until [DONE].
// Comments (`: keep-alive`) are skipped, as the openai client does; a non-JSON event is an error.

export async function* readEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = eventEnd(buffer)) !== null) {
        const raw = buffer.slice(0, end.index);
        buffer = buffer.slice(end.index + end.length);
        const data = dataOf(raw);
        if (data === null) continue;
        if (data === "[DONE]") return;
        yield JSON.parse(data);
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

function eventEnd(buffer) {
  const match = /\r\n\r\n|\n\n|\r\r/.exec(buffer);
  return match ? { index: match.index, length: match[0].length } : null;
}

function dataOf(rawEvent) {
  const lines = rawEvent.split(/\r\n|\n|\r/).filter((line) => line.startsWith("data:"));
  if (lines.length === 0) return null;
  return lines.map((line) => line.slice(line.startsWith("data: ") ? 6 : 5)).join("\n");
}
