/* Classifies captures through the C ABI of skype-dpi and prints one line
 * per flow: "proto src -> dst first_seen_micros label kind via tunnel",
 * the final verdict (an ended flow's record, replaced by a later
 * revision); the tunnel is "-" or "kind/id".
 *
 *   cc -Wall -Wextra -Werror -I capi/include classify.c libskype_dpi.a \
 *      -lpcap -lpthread -ldl -lm -o classify_c
 *   ./classify_c CAPTURE...
 *
 * Exit code: 0, or 1 when a capture cannot be read or a call fails. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skype_dpi.h"

struct flow_line {
    skype_dpi_flow_key key;
    int64_t first_seen;
    skype_dpi_label label;
    skype_dpi_kind kind;
    uint8_t via;
    skype_dpi_tunnel tunnel;
};

static struct flow_line *flows;
static size_t nflows, capflows;

static const char *label_name(skype_dpi_label l) {
    switch (l) {
    case SKYPE_DPI_SKYPE: return "skype";
    case SKYPE_DPI_NOT_SKYPE: return "not_skype";
    default: return "undecided";
    }
}

static const char *kind_name(skype_dpi_kind k) {
    switch (k) {
    case SKYPE_DPI_KIND_E2E: return "e2e";
    case SKYPE_DPI_KIND_E2O: return "e2o";
    case SKYPE_DPI_KIND_TCP: return "tcp";
    case SKYPE_DPI_KIND_SIGNALLING: return "signalling";
    default: return "-";
    }
}

static void tunnel_name(char *out, size_t len, const skype_dpi_tunnel *t) {
    static const char *names[] = {"-", "gtp_u", "gre", "erspan", "pptp", "vxlan", "geneve", "ip_in_ip", "capwap"};
    if (t->kind == 0) {
        snprintf(out, len, "-");
    } else if (t->has_id) {
        snprintf(out, len, "%s/%" PRIu32, t->kind < 9 ? names[t->kind] : "?", t->id);
    } else {
        snprintf(out, len, "%s/-", t->kind < 9 ? names[t->kind] : "?");
    }
}

static void endpoint(char *out, size_t len, const uint8_t *ip, uint8_t version, uint16_t port) {
    char a[INET6_ADDRSTRLEN];
    inet_ntop(version == 6 ? AF_INET6 : AF_INET, ip, a, sizeof a);
    snprintf(out, len, version == 6 ? "[%s]:%u" : "%s:%u", a, port);
}

static int same_flow(const struct flow_line *f, const skype_dpi_event *e) {
    return f->first_seen == e->first_seen_micros &&
           memcmp(&f->key, &e->key, sizeof f->key) == 0 &&
           memcmp(&f->tunnel, &e->tunnel, sizeof f->tunnel) == 0;
}

/* Keeps the final verdict of each flow: a record, or its later revision. */
static void record(const skype_dpi_event *e) {
    for (size_t i = 0; i < nflows; i++) {
        if (same_flow(&flows[i], e)) {
            flows[i].label = e->label;
            flows[i].kind = e->skype_kind;
            flows[i].via = e->via;
            return;
        }
    }
    if (nflows == capflows) {
        capflows = capflows ? 2 * capflows : 1024;
        flows = realloc(flows, capflows * sizeof *flows);
        if (!flows) exit(1);
    }
    flows[nflows++] = (struct flow_line){e->key, e->first_seen_micros, e->label, e->skype_kind, e->via, e->tunnel};
}

static int drain(skype_dpi_classifier *c) {
    skype_dpi_event e;
    skype_dpi_result r;
    while ((r = skype_dpi_next_event(c, &e)) == SKYPE_DPI_OK) {
        if (e.kind == SKYPE_DPI_EVENT_FLOW_ENDED || e.kind == SKYPE_DPI_EVENT_REVISED) record(&e);
    }
    return r == SKYPE_DPI_NO_EVENT ? 0 : -1;
}

static int classify(const char *path) {
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline(path, err);
    if (!p) {
        fprintf(stderr, "classify_c: %s: %s\n", path, err);
        return 1;
    }
    skype_dpi_classifier *c = NULL;
    if (skype_dpi_classifier_new(NULL, NULL, &c) != SKYPE_DPI_OK) {
        char msg[512];
        skype_dpi_last_error(msg, sizeof msg);
        fprintf(stderr, "classify_c: %s\n", msg);
        pcap_close(p);
        return 1;
    }
    int link = pcap_datalink(p), failed = 0;
    struct pcap_pkthdr *h;
    const u_char *data;
    int got;
    while ((got = pcap_next_ex(p, &h, &data)) == 1) {
        int64_t ts = (int64_t)h->ts.tv_sec * 1000000 + h->ts.tv_usec;
        skype_dpi_result r = skype_dpi_push(c, data, h->caplen, h->len, ts, (uint32_t)link, NULL);
        if (r < 0 || drain(c) < 0) {
            failed = 1;
            break;
        }
    }
    if (skype_dpi_finish(c) != SKYPE_DPI_OK || drain(c) < 0) failed = 1;
    skype_dpi_classifier_free(c);
    pcap_close(p);
    for (size_t i = 0; i < nflows; i++) {
        char s[64], d[64], t[64];
        const struct flow_line *f = &flows[i];
        endpoint(s, sizeof s, f->key.src_ip, f->key.ip_version, f->key.src_port);
        endpoint(d, sizeof d, f->key.dst_ip, f->key.ip_version, f->key.dst_port);
        tunnel_name(t, sizeof t, &f->tunnel);
        printf("%s %s -> %s %" PRId64 " %s %s %s %s\n", f->key.protocol == 6 ? "tcp" : "udp", s, d,
               f->first_seen, label_name(f->label), kind_name(f->kind),
               f->via == 1 ? "flow" : f->via == 2 ? "endpoint" : "-", t);
    }
    nflows = 0;
    return failed;
}

int main(int argc, char **argv) {
    int failed = 0;
    for (int i = 1; i < argc; i++) failed |= classify(argv[i]);
    free(flows);
    return failed;
}
