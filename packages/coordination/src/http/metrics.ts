import type { CoordinationService } from '../service.js';

const BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Request counts and latencies by method, route and status, for `/metrics`. */
export class HttpMetrics {
  readonly #requests = new Map<string, number>();
  readonly #durations = new Map<string, { buckets: number[]; sum: number; count: number }>();
  /** Event streams open now. */
  streams = 0;

  /** Records one request; `route` is the matched pattern (`/v1/tasks/:id`), so labels stay few. */
  observeRequest(method: string, route: string, status: number, ms: number): void {
    const key = `method="${method}",route="${route}",status="${status}"`;
    this.#requests.set(key, (this.#requests.get(key) ?? 0) + 1);
    const durationKey = `method="${method}",route="${route}"`;
    let h = this.#durations.get(durationKey);
    if (h === undefined) {
      h = { buckets: BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.#durations.set(durationKey, h);
    }
    const seconds = ms / 1000;
    BUCKETS.forEach((le, i) => {
      if (seconds <= le)
        (h as { buckets: number[] }).buckets[i] =
          ((h as { buckets: number[] }).buckets[i] ?? 0) + 1;
    });
    h.sum += seconds;
    h.count += 1;
  }

  lines(): string[] {
    const out = [
      '# HELP exec_kernel_event_streams Server-Sent Event streams open now.',
      '# TYPE exec_kernel_event_streams gauge',
      `exec_kernel_event_streams ${this.streams}`,
      '# HELP exec_kernel_http_requests_total HTTP requests by method, route and status.',
      '# TYPE exec_kernel_http_requests_total counter',
    ];
    for (const [labels, n] of this.#requests)
      out.push(`exec_kernel_http_requests_total{${labels}} ${n}`);
    out.push(
      '# HELP exec_kernel_http_request_duration_seconds HTTP request latency.',
      '# TYPE exec_kernel_http_request_duration_seconds histogram',
    );
    for (const [labels, h] of this.#durations) {
      BUCKETS.forEach((le, i) => {
        out.push(
          `exec_kernel_http_request_duration_seconds_bucket{${labels},le="${le}"} ${h.buckets[i]}`,
        );
      });
      out.push(`exec_kernel_http_request_duration_seconds_bucket{${labels},le="+Inf"} ${h.count}`);
      out.push(`exec_kernel_http_request_duration_seconds_sum{${labels}} ${h.sum}`);
      out.push(`exec_kernel_http_request_duration_seconds_count{${labels}} ${h.count}`);
    }
    return out;
  }
}

const escapeLabel = (value: string) =>
  value.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n');

/** The Prometheus text exposition of the service's counters, gauges and the HTTP metrics. */
export async function renderMetrics(
  service: CoordinationService,
  http: HttpMetrics,
): Promise<string> {
  const c = service.counters;
  const out: string[] = [];
  const counter = (name: string, help: string, values: Array<[string, number]>) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
    for (const [labels, v] of values) out.push(`${name}${labels} ${v}`);
  };
  const gauge = (name: string, help: string, values: Array<[string, number]>) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
    for (const [labels, v] of values) out.push(`${name}${labels} ${v}`);
  };
  const healthy = await service.healthy(1000);
  gauge('exec_kernel_up', 'Whether the storage answers (1) or not (0).', [
    [`{storage="${service.storage.engine}"}`, healthy ? 1 : 0],
  ]);
  counter('exec_kernel_tasks_enqueued_total', 'Tasks enqueued.', [['', c.enqueued]]);
  counter('exec_kernel_claims_total', 'Claims that returned a task.', [['', c.claims]]);
  counter('exec_kernel_claim_misses_total', 'Claims that found nothing to claim.', [
    ['', c.claimMisses],
  ]);
  counter(
    'exec_kernel_transitions_total',
    'Lifecycle moves, by target state.',
    Object.entries(c.transitions).map(([to, n]) => [`{to="${escapeLabel(to)}"}`, n]),
  );
  counter(
    'exec_kernel_violations_total',
    'Refused actions, by Violation kind.',
    Object.entries(c.violations).map(([kind, n]) => [`{kind="${escapeLabel(kind)}"}`, n]),
  );
  counter('exec_kernel_leases_expired_total', 'Leases that expired and were reaped.', [
    ['', c.leasesExpired],
  ]);
  counter('exec_kernel_escalations_total', 'Escalations raised.', [['', c.escalations]]);
  counter('exec_kernel_actions_total', 'Agent tool calls recorded (refused ones are violations).', [
    ['', c.actions],
  ]);
  counter(
    'exec_kernel_action_warnings_total',
    'Action-loop warnings reported, by loop type.',
    Object.entries(c.actionWarnings).map(([type, n]) => [`{loop_type="${escapeLabel(type)}"}`, n]),
  );
  if (healthy) {
    const counts = await service.storage.countTasks();
    gauge(
      'exec_kernel_tasks',
      'Tasks in each state.',
      Object.entries(counts).map(([state, n]) => [`{state="${state}"}`, n]),
    );
    gauge('exec_kernel_escalations_open', 'Escalations not yet resolved.', [
      ['', await service.storage.countOpenEscalations()],
    ]);
  }
  out.push(...http.lines());
  return `${out.join('\n')}\n`;
}
