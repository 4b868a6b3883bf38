/**
 * The body of a {@linkcode ResamplePool} helper: solves its share of a batch of bootstrap
 * resamples with the same code as the calling thread (bootstrap.ts `solveResamples`).
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { blasInfo, loadBlas } from "./_blas.ts";
import { solveResamples } from "./bootstrap.ts";
import { Curvature } from "./curvature.ts";
import type { ResampleReply, ResampleRequest } from "./resample_pool.ts";

let curvature: { id: number; curv: Curvature } | undefined;

self.onmessage = (e: MessageEvent<ResampleRequest>) => {
  const msg = e.data;
  const reply: ResampleReply = { call: msg.call, values: [], applications: 0 };
  try {
    if (blasInfo().lib !== msg.blasLib) loadBlas(msg.blasLib === "typescript" ? undefined : msg.blasLib);
    if (msg.curvature) {
      const c = msg.curvature;
      const curv = c.kind === "factor" ? Curvature.factor(c.data, c.m, c.rows, c.k) : Curvature.dense(c.data, c.m, c.k);
      curvature = { id: c.id, curv };
    }
    const job = msg.job;
    if (job) {
      if (curvature?.id !== job.curvatureId) throw new Error(`no curvature ${job.curvatureId} here`);
      const counter = { applications: 0 };
      const deadline = job.deadline === undefined ? undefined : job.deadline - performance.timeOrigin;
      reply.values = solveResamples({ curv: curvature.curv, p: job.p, S: job.S, tol: job.tol, deadline, counter }, msg.weights);
      reply.applications = counter.applications;
    }
  } catch (err) {
    reply.error = String((err as Error)?.message ?? err);
  }
  self.postMessage(reply);
};
