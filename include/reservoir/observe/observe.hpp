#pragma once
// reservoir/observe: what a service exposes about its pool, built on
// Pool::stats() and nothing else (no driver, no libpq; the core never
// includes these headers).
//   prometheus.hpp  to_prometheus(): the Prometheus text exposition (/metrics)
//   json.hpp        to_json(PoolStats): a JSON snapshot (debug endpoints, logs)
//   health.hpp      check_health() and HealthMonitor: a verdict with reasons,
//                   and to_json(HealthReport) for a /health endpoint

#include "health.hpp"
#include "json.hpp"
#include "prometheus.hpp"
