// Replays a shop plan (../plan.py) through the real OpenTelemetry JS SDK.
//
//   node shop.mjs --plan PLAN.json --endpoint http://127.0.0.1:PORT/v1/traces --ids IDS.json
//
// One BasicTracerProvider per service (its own Resource, BatchSpanProcessor and OTLP/HTTP JSON
// exporter), every span with its planned start and end time, in the plan's time order. Writes
// the trace and span ids the SDK chose to IDS.json, for truth.py. Exits non-zero when the SDK
// reports any warning or error (a dropped span, a failed export).

import fs from 'node:fs';
import {
  diag,
  DiagLogLevel,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';

function args() {
  const a = {};
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || argv[i + 1] === undefined) usage();
    a[argv[i].slice(2)] = argv[i + 1];
  }
  if (!a.plan || !a.endpoint || !a.ids) usage();
  return a;
}

function usage() {
  console.error('usage: node shop.mjs --plan PLAN.json --endpoint URL --ids IDS.json');
  process.exit(2);
}

// Everything the SDK has to say at warn level or worse is a failure of the run.
const problems = [];
diag.setLogger(
  {
    error: (...m) => problems.push(`error: ${m.join(' ')}`),
    warn: (...m) => problems.push(`warn: ${m.join(' ')}`),
    info: () => {},
    debug: () => {},
    verbose: () => {},
  },
  DiagLogLevel.WARN,
);

const NS = 1_000_000_000n;
function hr(ns) {
  const n = BigInt(ns);
  return [Number(n / NS), Number(n % NS)];
}

const KINDS = { server: SpanKind.SERVER, client: SpanKind.CLIENT, internal: SpanKind.INTERNAL };
// Spans ended between forced flushes: each provider's queue (2048 by default) never fills.
const FLUSH_EVERY = 1024;

async function main() {
  const a = args();
  const plan = JSON.parse(fs.readFileSync(a.plan, 'utf8'));
  const providers = {};
  const tracers = {};
  for (const [service, version] of Object.entries(plan.services)) {
    const provider = new BasicTracerProvider({
      resource: resourceFromAttributes({
        'service.name': service,
        'service.version': version,
        'deployment.environment.name': 'bench',
      }),
      spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: a.endpoint }))],
    });
    providers[service] = provider;
    tracers[service] = provider.getTracer('cartscope.shop', '1.0.0');
  }

  const traces = plan.traces;
  const live = traces.map((t) => new Array(t.length));
  const contexts = traces.map((t) => new Array(t.length));
  let ended = 0;
  for (const [what, ti, si] of plan.events) {
    const s = traces[ti][si];
    if (what === 1) {
      const parent = s.parent >= 0 ? trace.setSpanContext(ROOT_CONTEXT, contexts[ti][s.parent]) : ROOT_CONTEXT;
      const attributes = {};
      for (const [k, , v] of s.attributes) attributes[k] = v;
      const span = tracers[s.service].startSpan(
        s.name,
        { kind: KINDS[s.kind], startTime: hr(s.start), attributes },
        parent,
      );
      live[ti][si] = span;
      contexts[ti][si] = span.spanContext();
    } else {
      const span = live[ti][si];
      live[ti][si] = undefined;
      for (const e of s.events ?? []) {
        const err = new Error(e.message);
        err.name = e.type;
        span.recordException(err, hr(e.time));
      }
      if (s.error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: s.error });
      span.end(hr(s.end));
      ended += 1;
      if (ended % FLUSH_EVERY === 0) {
        await Promise.all(Object.values(providers).map((p) => p.forceFlush()));
      }
    }
  }
  await Promise.all(Object.values(providers).map((p) => p.shutdown()));

  const ids = {
    trace_ids: contexts.map((c) => c[0].traceId),
    span_ids: contexts.map((c) => c.map((x) => x.spanId)),
  };
  fs.writeFileSync(a.ids, JSON.stringify(ids));
  if (problems.length > 0) {
    for (const p of problems.slice(0, 10)) console.error(`shop.mjs: the SDK said: ${p}`);
    process.exit(1);
  }
}

main().catch((e) => {
  console.error(`shop.mjs: ${e.stack ?? e}`);
  process.exit(1);
});
