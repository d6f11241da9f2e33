// A small Server-Sent Events parser over fetch's ReadableStream (EventSource cannot POST).
// Follows the WHATWG event-stream format: "event:" and "data:" lines, a blank line ends an event,
// CRLF, LF or CR line endings, ":" comments ignored, multi-line data joined with "\n".

/** Yield {event, data} for each event of a fetch Response body, as soon as it arrives. */
export async function* readEvents(response, signal) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const abort = () => reader.cancel().catch(() => {});
  signal?.addEventListener("abort", abort, { once: true });
  let buffer = "";
  let event = "message";
  let data = [];
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let match;
      // A lone trailing "\r" may be the first half of "\r\n": wait for the next chunk.
      while ((match = /\r\n|\n|\r(?!$)/.exec(buffer))) {
        const line = buffer.slice(0, match.index);
        buffer = buffer.slice(match.index + match[0].length);
        if (line === "") {
          if (data.length) yield { event, data: data.join("\n") };
          event = "message";
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let val = colon === -1 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "event") event = val;
        else if (field === "data") data.push(val);
      }
    }
  } finally {
    signal?.removeEventListener("abort", abort);
    reader.releaseLock?.();
  }
}
