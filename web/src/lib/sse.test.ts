import { describe, expect, it } from 'vitest'
import { readSSE, SSEParser, type SSEMessage } from './sse'

const enc = new TextEncoder()

/** parseChunks feeds bytes to a parser cut at the offsets given and returns every event. */
function parseChunks(bytes: Uint8Array, cuts: number[]): SSEMessage[] {
  const p = new SSEParser()
  const out: SSEMessage[] = []
  let at = 0
  for (const c of [...cuts, bytes.length]) {
    out.push(...p.push(bytes.slice(at, c)))
    at = c
  }
  return out
}

// What evp's live route sends: a retry time, a comment, events (one with a multi-byte
// character), a ping, and the drop notice.
const stream =
  'retry: 2000\n: live\n\n' +
  'event: event\ndata: {"eventId":"evt_1","eventType":"page_view","metadata":{"page":"/café"}}\n\n' +
  ': ping\n\n' +
  'event: event\ndata: {"eventId":"evt_2","eventType":"click","payload":{"emoji":"🎉"}}\n\n' +
  'event: dropped\ndata: {"reason":"this client read too slowly; reconnect to go on from now"}\n\n'

const want: SSEMessage[] = [
  { event: 'event', data: '{"eventId":"evt_1","eventType":"page_view","metadata":{"page":"/café"}}' },
  { event: 'event', data: '{"eventId":"evt_2","eventType":"click","payload":{"emoji":"🎉"}}' },
  { event: 'dropped', data: '{"reason":"this client read too slowly; reconnect to go on from now"}' },
]

describe('SSEParser', () => {
  it("reads evp's stream whole: events, comments skipped, the drop notice, the retry time", () => {
    const p = new SSEParser()
    expect(p.push(enc.encode(stream))).toEqual(want)
    expect(p.retry).toBe(2000)
    expect(JSON.parse(want[0].data).metadata.page).toBe('/café')
  })

  it('gives the same events however the bytes are cut, inside lines and UTF-8 characters', () => {
    const bytes = enc.encode(stream)
    // Every single cut, then every byte on its own.
    for (let i = 1; i < bytes.length; i++) expect(parseChunks(bytes, [i]), `cut at byte ${i}`).toEqual(want)
    expect(parseChunks(bytes, Array.from({ length: bytes.length - 1 }, (_, i) => i + 1))).toEqual(want)
    // Random cuts, several per run.
    let seed = 7
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n)
    for (let run = 0; run < 200; run++) {
      const cuts = [...new Set(Array.from({ length: 1 + rand(12) }, () => 1 + rand(bytes.length - 1)))].sort((a, b) => a - b)
      expect(parseChunks(bytes, cuts), `cuts ${cuts}`).toEqual(want)
    }
  })

  it('joins multi-line data with newlines and accepts CRLF and CR line ends, even split', () => {
    const text = 'event: event\r\ndata: line one\r\ndata:line two\r\ndata\r\n\r\ndata: x\rdata: y\r\r'
    const bytes = enc.encode(text)
    const all = [
      { event: 'event', data: 'line one\nline two\n' },
      { event: 'message', data: 'x\ny' },
    ]
    for (let i = 1; i < bytes.length; i++) expect(parseChunks(bytes, [i]), `cut at byte ${i}`).toEqual(all)
  })

  it('skips comments, unknown fields and events without data; keeps the last id; drops a trailing partial event', () => {
    const p = new SSEParser()
    expect(p.push(': only a comment\n\n')).toEqual([])
    expect(p.push('event: event\n\n')).toEqual([]) // no data: not dispatched
    expect(p.push('foo: bar\nid: 7\ndata: a\n\n')).toEqual([{ event: 'message', data: 'a', id: '7' }])
    expect(p.push('retry: soon\ndata: b\n\n')).toEqual([{ event: 'message', data: 'b', id: '7' }])
    expect(p.retry).toBeUndefined()
    expect(p.push('event: event\ndata: {"partial":')).toEqual([])
  })

  it('ignores a byte order mark at the start of the stream, even split', () => {
    const p = new SSEParser()
    expect(p.push(new Uint8Array([0xef, 0xbb]))).toEqual([])
    expect(p.push(new Uint8Array([0xbf, ...enc.encode('data: a\n\n')]))).toEqual([{ event: 'message', data: 'a' }])
    expect(new SSEParser().push('\ufeffdata: b\n\n')).toEqual([{ event: 'message', data: 'b' }])
  })
})

describe('readSSE', () => {
  it('reads a body chunk by chunk, calling back once per chunk, pings included', async () => {
    const chunks = ['event: event\ndata: {"eventId":"evt_1"}\n\nevent: event\nda', 'ta: {"eventId":"evt_2"}\n\n', ': ping\n\n']
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        for (const s of chunks) c.enqueue(enc.encode(s))
        c.close()
      },
    })
    const calls: string[][] = []
    await readSSE(body, (events) => calls.push(events.map((e) => e.data)))
    expect(calls).toEqual([['{"eventId":"evt_1"}'], ['{"eventId":"evt_2"}'], []])
  })

  it('stops when its signal aborts, though the stream stays open', async () => {
    let ctl!: ReadableStreamDefaultController<Uint8Array>
    const body = new ReadableStream<Uint8Array>({ start: (c) => void (ctl = c) })
    const abort = new AbortController()
    const got: string[] = []
    const done = readSSE(body, (events) => got.push(...events.map((e) => e.data)), abort.signal)
    ctl.enqueue(enc.encode('data: 1\n\n'))
    await expect.poll(() => got).toEqual(['1'])
    abort.abort()
    await done
    expect(got).toEqual(['1'])
  })
})
