// The type the dashboards' JSON must satisfy: @grafana/schema's Dashboard (Grafana 11), with each enum
// replaced by its literal values (JSON holds "thresholds", not FieldColorModeId.Thresholds).
// tests/test_observability.py writes check/<dashboard>.ts as
//   export const dashboard = <the JSON> satisfies DashboardJson;
// and runs tsc: an unknown key (excess property), a missing required key or a wrong value fails.
import type { Dashboard } from "@grafana/schema";

type Loose<T> = T extends string
  ? `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : { [K in keyof T]: Loose<T[K]> };

export type DashboardJson = Loose<Dashboard>;
