import { parseEndpoint } from "./zmtp_router.ts";
import { checkGreeting, COMMAND, encodeCommand, encodeMessage, FrameReader, greeting, MORE, writeAll } from "./zmtp.ts";

/** A minimal ZMTP DEALER for Deno tests: one connection, send one frame, receive one message. */
export class TestDealer {
  #conn: Deno.Conn;
  #reader: FrameReader;
  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
    this.#reader = new FrameReader(conn);
  }

  static async connect(endpoint: string): Promise<TestDealer> {
    const o = parseEndpoint(endpoint);
    const conn = o.transport === "unix"
      ? await Deno.connect({ transport: "unix", path: o.path })
      : await Deno.connect({ hostname: o.hostname, port: o.port ?? 0 });
    const d = new TestDealer(conn);
    await writeAll(conn, greeting(false));
    const g = await d.#reader.exact(64);
    if (!g || checkGreeting(g)) throw new Error("bad greeting");
    await writeAll(conn, encodeCommand("READY", { "Socket-Type": "DEALER" }));
    const ready = await d.#reader.frame(1 << 30);
    if (!ready || !(ready.flags & COMMAND)) throw new Error("no READY");
    return d;
  }

  send(frame: Uint8Array): Promise<void> {
    return writeAll(this.#conn, encodeMessage([frame]));
  }

  /** Receives one message (its frames), failing after `ms`. */
  async receive(ms = 3000): Promise<Uint8Array[]> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error("receive timed out")), ms)));
    const read = (async () => {
      const parts: Uint8Array[] = [];
      for (;;) {
        const f = await this.#reader.frame(1 << 30);
        if (!f) throw new Error("connection closed");
        if (f.flags & COMMAND) continue;
        parts.push(f.body);
        if (!(f.flags & MORE)) return parts;
      }
    })();
    try {
      return await Promise.race([read, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    try {
      this.#conn.close();
    } catch { /* closed */ }
  }
}
