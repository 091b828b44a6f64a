/*
 * report.c - table and JSON output (see report.h).
 *
 * Latencies are kept in nanoseconds and printed in milliseconds (table) or
 * microseconds (JSON, as floats). jobs/s is the window's figure: jobs
 * finished inside the window divided by its length.
 */
#include "report.h"

#include <string.h>

/* ------------------------------------------------------------- shared */

static double rate_of(uint64_t n, double secs)
{
    return secs > 0 ? (double)n / secs : 0.0;
}

static const char *finish_name(bench_workload w)
{
    switch (w) {
    case WL_PUSH: return "push answered";
    case WL_CYCLE_POP: return "delivered";
    default: return "ack answered";
    }
}

/* Writes s as a JSON string. */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

/* ------------------------------------------------------------- table */

static void table_lat_row(FILE *f, const char *name, const hist *h)
{
    if (h->count == 0)
        return;
    fprintf(f, "  %-22s %9.3f %9.3f %9.3f %9.3f %9.3f %10llu\n", name,
            hist_quantile(h, 0.50) / 1e6, hist_quantile(h, 0.99) / 1e6,
            hist_quantile(h, 0.999) / 1e6, h->max / 1e6, hist_mean(h) / 1e6,
            (unsigned long long)h->count);
}

static void table_head(FILE *f, const bench_cfg *cfg)
{
    fprintf(f, "spool-bench: %s at %s:%s, workload %s (%s%s%s)\n", opts_kind_name(cfg->kind),
            cfg->host, cfg->port, opts_workload_name(cfg->workload), opts_push_name(cfg),
            cfg->workload == WL_PUSH ? "" : " -> ", opts_fetch_name(cfg));
    fprintf(f, "  %d producer(s) x depth %d, %d consumer(s), %zu-byte payloads, %d thread(s)",
            cfg->producers, cfg->depth, cfg->consumers, cfg->payload, cfg->threads);
    if (cfg->queues > 1)
        fprintf(f, ", %d queues", cfg->queues);
    if (cfg->rate > 0)
        fprintf(f, ", target %.0f pushes/s", cfg->rate);
    fputc('\n', f);
}

void report_table(FILE *f, const bench_cfg *cfg, const preload_info *pre, const bench_result *res)
{
    table_head(f, cfg);
    if (cfg->delayed > 0)
        fprintf(f, "  %lld delayed jobs present (%lld pre-loaded now, in %.2f s)\n",
                pre->present, pre->jobs, pre->seconds);
    if (res->status != 0) {
        fprintf(f, "  FAILED: %s\n", res->error);
        return;
    }
    fprintf(f, "\n  %-22s %12.0f   (%llu jobs %s in %.2f s)\n", "jobs/s",
            rate_of(res->finished, res->window_s), (unsigned long long)res->finished,
            finish_name(cfg->workload), res->window_s);
    if (cfg->workload != WL_PUSH)
        fprintf(f, "  %-22s %12.0f\n", "pushes/s", rate_of(res->pushed, res->window_s));
    fprintf(f, "\n  %-22s %9s %9s %9s %9s %9s %10s\n", "latency (ms)", "p50", "p99", "p99.9",
            "max", "mean", "samples");
    table_lat_row(f, "push -> push answered", &res->push_lat);
    table_lat_row(f, "push -> delivered", &res->deliver_lat);
    if (cfg->workload == WL_CYCLE_RELIABLE)
        table_lat_row(f, "push -> ack answered", &res->cycle_lat);
    fprintf(f, "\n  CPU over the window: spool-bench %.0f%% of a core", res->bench_cpu * 100);
    if (res->server_cpu >= 0)
        fprintf(f, ", server %.0f%%", res->server_cpu * 100);
    fprintf(f, "\n  whole run: %llu pushed, %llu delivered, %llu acked; %llu duplicate(s), "
            "%llu not drained, %llu ack(s) refused, %llu empty fetch(es)\n",
            (unsigned long long)res->push_ok, (unsigned long long)res->delivered,
            (unsigned long long)res->acked, (unsigned long long)res->dups,
            (unsigned long long)res->undrained, (unsigned long long)res->ack_refused,
            (unsigned long long)res->fetch_empty);
}

/* -------------------------------------------------------------- JSON */

static void json_cfg(FILE *f, const bench_cfg *cfg, const preload_info *pre)
{
    fputs("\"tool\":\"spool-bench\",\"kind\":", f);
    json_str(f, opts_kind_name(cfg->kind));
    fputs(",\"workload\":", f);
    json_str(f, opts_workload_name(cfg->workload));
    fputs(",\"host\":", f);
    json_str(f, cfg->host);
    fputs(",\"port\":", f);
    json_str(f, cfg->port);
    fputs(",\"push_cmd\":", f);
    json_str(f, opts_push_name(cfg));
    fputs(",\"fetch_cmd\":", f);
    json_str(f, opts_fetch_name(cfg));
    fprintf(f, ",\"queue\":");
    json_str(f, cfg->queue);
    fprintf(f, ",\"queues\":%d,\"producers\":%d,\"consumers\":%d,\"depth\":%d,\"threads\":%d,"
            "\"payload_bytes\":%zu,\"duration_s\":%g,\"jobs_limit\":%lld,\"rate_target\":%g,"
            "\"delayed\":%lld,\"delayed_present\":%lld,\"delayed_loaded\":%lld,"
            "\"delayed_load_s\":%.3f",
            cfg->queues, cfg->producers, cfg->consumers, cfg->depth, cfg->threads, cfg->payload,
            cfg->duration_s, cfg->jobs, cfg->rate, cfg->delayed, pre->present, pre->jobs,
            pre->seconds);
}

static void json_hist(FILE *f, const char *name, const hist *h, bool comma)
{
    fprintf(f, "%s\"%s\":{\"count\":%llu,\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f,"
            "\"max\":%.1f,\"mean\":%.1f}", comma ? "," : "", name, (unsigned long long)h->count,
            hist_quantile(h, 0.50) / 1e3, hist_quantile(h, 0.99) / 1e3,
            hist_quantile(h, 0.999) / 1e3, h->max / 1e3, hist_mean(h) / 1e3);
}

void report_json(FILE *f, const bench_cfg *cfg, const preload_info *pre, const bench_result *res)
{
    fputc('{', f);
    json_cfg(f, cfg, pre);
    fputs(",\"status\":", f);
    json_str(f, res->status == 0 ? "ok" : "error");
    if (res->status != 0) {
        fputs(",\"error\":", f);
        json_str(f, res->error);
    }
    fprintf(f, ",\"window_s\":%.4f,\"jobs\":%llu,\"jobs_per_s\":%.1f,\"pushes_per_s\":%.1f",
            res->window_s, (unsigned long long)res->finished,
            rate_of(res->finished, res->window_s), rate_of(res->pushed, res->window_s));
    fprintf(f, ",\"window_t0_mono\":%.4f,\"window_t1_mono\":%.4f",
            (double)res->window_t0_ns / 1e9, (double)res->window_t1_ns / 1e9);
    fprintf(f, ",\"sent\":%llu,\"pushed\":%llu,\"delivered\":%llu,\"acked\":%llu,"
            "\"ack_refused\":%llu,\"fetch_empty\":%llu,\"duplicates\":%llu,\"undrained\":%llu",
            (unsigned long long)res->sent, (unsigned long long)res->push_ok,
            (unsigned long long)res->delivered, (unsigned long long)res->acked,
            (unsigned long long)res->ack_refused, (unsigned long long)res->fetch_empty,
            (unsigned long long)res->dups, (unsigned long long)res->undrained);
    fprintf(f, ",\"bench_cpu\":%.3f", res->bench_cpu);
    if (res->server_cpu >= 0)
        fprintf(f, ",\"server_cpu\":%.3f", res->server_cpu);
    fputs(",\"latency_us\":{", f);
    json_hist(f, "push", &res->push_lat, false);
    json_hist(f, "delivery", &res->deliver_lat, true);
    json_hist(f, "cycle", &res->cycle_lat, true);
    fputs("}}\n", f);
}

void report_json_status(FILE *f, const bench_cfg *cfg, const char *status, const char *reason)
{
    preload_info none = { 0, 0, 0 };
    fputc('{', f);
    json_cfg(f, cfg, &none);
    fputs(",\"status\":", f);
    json_str(f, status);
    fputs(",\"error\":", f);
    json_str(f, reason);
    fputs("}\n", f);
}
