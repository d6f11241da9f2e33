// Server-Sent Events from a fetch Response (EventSource cannot POST), parsed by the npm library
// eventsource-parser (served from node_modules as /vendor/eventsource-parser.js). Its ./stream entry point
// would import "./index.js", a path /vendor/ does not serve, so the few lines of its TransformStream are here.
import { createParser } from "/vendor/eventsource-parser.js";

/** A TransformStream from decoded text to {event, data, id}; an unnamed event is "message", as in EventSource. */
function eventStream() {
  let parser;
  return new TransformStream({
    start(controller) {
      parser = createParser({
        onEvent: ({ event, data, id }) => controller.enqueue({ event: event || "message", data, id }),
      });
    },
    transform(chunk) {
      parser.feed(chunk);
    },
  });
}

/** Yield {event, data, id} for each event of a fetch Response body, as soon as it arrives. */
export async function* readEvents(response, signal) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).pipeThrough(eventStream()).getReader();
  const abort = () => reader.cancel().catch(() => {});
  signal?.addEventListener("abort", abort, { once: true });
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    signal?.removeEventListener("abort", abort);
    abort(); // a consumer that stops early closes the connection (a no-op once the stream has ended)
  }
}
