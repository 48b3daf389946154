// A reader of server-sent events (text/event-stream) for streams read with fetch: EventSource
// cannot send the Authorization or x-api-key header the dashboard signs in with.
// The format: https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation

/** One server-sent event: its type ("message" when the stream names none) and its data lines joined by "\n". */
export interface SSEMessage {
  event: string
  data: string
  /** The last event id the stream gave, if any. */
  id?: string
}

/**
 * SSEParser turns the bytes of a stream, in chunks cut anywhere (inside a line, a CRLF or a
 * UTF-8 character), into events. Lines end with LF, CR or CRLF; a line starting with ":" is a
 * comment and is skipped; "event", "data", "id" and "retry" are the fields, others are
 * ignored; a blank line ends an event, and an event without data is not dispatched. What
 * follows the last blank line when the stream ends is discarded, as the format says.
 */
export class SSEParser {
  /** The reconnection time the stream asked for (its last "retry:" field), in ms. */
  retry: number | undefined
  private decoder = new TextDecoder('utf-8')
  private buf = ''
  private afterCR = false
  private started = false
  private event = ''
  private data: string[] = []
  private id: string | undefined

  /** push feeds a chunk of the stream, bytes or text, and returns the events it completes. */
  push(chunk: Uint8Array | string): SSEMessage[] {
    let text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true })
    if (!this.started && text.length > 0) {
      this.started = true
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1)
    }
    // A CR at the end of the previous chunk may be the first half of a CRLF.
    if (this.afterCR && text.startsWith('\n')) text = text.slice(1)
    this.afterCR = false
    const out: SSEMessage[] = []
    let start = 0
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i)
      if (c !== 10 && c !== 13) continue
      this.line(this.buf + text.slice(start, i), out)
      this.buf = ''
      if (c === 13) {
        if (i + 1 === text.length) this.afterCR = true
        else if (text.charCodeAt(i + 1) === 10) i++
      }
      start = i + 1
    }
    this.buf += text.slice(start)
    return out
  }

  private line(line: string, out: SSEMessage[]) {
    if (line === '') {
      if (this.data.length > 0) out.push({ event: this.event || 'message', data: this.data.join('\n'), ...(this.id !== undefined ? { id: this.id } : {}) })
      this.event = ''
      this.data = []
      return
    }
    if (line.startsWith(':')) return
    const colon = line.indexOf(':')
    const field = colon < 0 ? line : line.slice(0, colon)
    let value = colon < 0 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    switch (field) {
      case 'event':
        this.event = value
        break
      case 'data':
        this.data.push(value)
        break
      case 'id':
        if (!value.includes('\0')) this.id = value
        break
      case 'retry':
        if (/^\d+$/.test(value)) this.retry = Number(value)
        break
    }
  }
}

/**
 * readSSE reads the server-sent events of body until the stream ends or signal aborts,
 * calling onEvents once per chunk read with the events it completed (a burst is one call; a
 * chunk of comments only, such as a ping, is a call with none, so the stream is seen alive). It
 * returns parser (a new one unless given), which holds the stream's retry time. A body that breaks off (the
 * connection lost) rejects with the reader's error.
 */
export async function readSSE(
  body: ReadableStream<Uint8Array>,
  onEvents: (events: SSEMessage[]) => void,
  signal?: AbortSignal,
  parser = new SSEParser(),
): Promise<SSEParser> {
  const reader = body.getReader()
  const stop = () => {
    reader.cancel().catch(() => {})
  }
  signal?.addEventListener('abort', stop)
  try {
    while (!signal?.aborted) {
      const { done, value } = await reader.read()
      if (done || signal?.aborted) break
      onEvents(parser.push(value))
    }
  } finally {
    signal?.removeEventListener('abort', stop)
    reader.releaseLock()
  }
  return parser
}
