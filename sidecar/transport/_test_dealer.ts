import { ZMQ } from "./zmq_ffi.ts";
import { findLibzmq } from "./zmq_lib.ts";
import { ZmqContext, type ZmqSocket } from "./zmq_socket.ts";

/** A libzmq DEALER for Deno tests: connect, send one frame, receive one message (with a timeout). */
export class TestDealer {
  #ctx: ZmqContext;
  #sock: ZmqSocket;
  private constructor(ctx: ZmqContext, sock: ZmqSocket) {
    this.#ctx = ctx;
    this.#sock = sock;
  }

  static connect(endpoint: string): Promise<TestDealer> {
    const ctx = new ZmqContext(findLibzmq());
    const sock = ctx.socket(ZMQ.DEALER);
    sock.setOption(ZMQ.LINGER, 0);
    sock.connect(endpoint);
    sock.start();
    return Promise.resolve(new TestDealer(ctx, sock));
  }

  /** Sends one frame, waiting while libzmq has no connection yet. */
  async send(frame: Uint8Array, ms = 3000): Promise<void> {
    const end = Date.now() + ms;
    while (this.#sock.trySend([frame]) !== "sent") {
      if (Date.now() > end) throw new Error("send timed out");
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  /** Receives one message (its frames), failing after `ms`. */
  async receive(ms = 3000): Promise<Uint8Array[]> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((
      _,
      rej,
    ) => (timer = setTimeout(() => rej(new Error("receive timed out")), ms)));
    try {
      const m = await Promise.race([this.#sock.receive(), timeout]);
      if (!m) throw new Error("socket closed");
      return m;
    } finally {
      clearTimeout(timer);
    }
  }

  close(): Promise<void> {
    return this.#ctx.term();
  }
}
