/**
 * The body of a {@linkcode WorkerPool} worker: runs one round task at a time against a
 * {@linkcode RemoteOracle} whose op calls go to the main thread (see worker_pool.ts).
 *
 * @module
 */
/// <reference lib="deno.worker" />
import type { CurvatureOracle } from "../estimate/oracle.ts";
import { type OpChannel, type OpResult, RemoteOracle } from "./remote_oracle.ts";
import { asWire, type FromWorker, fromWire, type ToWorker } from "./worker_pool.ts";

type RunRound = (oracle: CurvatureOracle, input: unknown) => Promise<unknown>;

const pending = new Map<number, { resolve: (r: OpResult) => void; reject: (e: unknown) => void }>();
let nextCall = 0;
const post = (msg: FromWorker) => self.postMessage(msg);

const channel: OpChannel = {
  call<T>(op: string, args: Record<string, unknown>, parse: (r: OpResult) => T): Promise<T> {
    const call = nextCall++;
    return new Promise<OpResult>((resolve, reject) => {
      pending.set(call, { resolve, reject });
      post({ kind: "call", call, op, args });
    }).then(parse);
  },
};

self.onmessage = async (e: MessageEvent<ToWorker>) => {
  const msg = e.data;
  if (msg.kind === "reply") {
    const p = pending.get(msg.call);
    pending.delete(msg.call);
    if (msg.error) p?.reject(fromWire(msg.error));
    else p?.resolve(msg.result!);
    return;
  }
  if (msg.kind === "load") {
    try {
      await import(msg.module);
      post({ kind: "loaded" });
    } catch (err) {
      post({ kind: "loaded", error: String((err as Error)?.message ?? err) });
    }
    return;
  }
  try {
    const mod = await import(msg.task.module) as { runRound?: RunRound };
    if (typeof mod.runRound !== "function") throw new Error(`Cannot run task ${msg.task.module}: it exports no runRound`);
    const value = await mod.runRound(new RemoteOracle(channel, msg.probe, msg.basis, msg.outputs), msg.task.input);
    post({ kind: "done", value });
  } catch (err) {
    post({ kind: "done", error: asWire(err) });
  }
};
