/*
 * The on-disk spool: every reading is appended here, durably, before it is published, and is
 * forgotten only when the ingest's end-to-end ack covers it (design.md §3: the broker's PUBACK is
 * not durability).
 *
 * DIR/spool/spool.dat is a sequence of fixed 32-byte records, little-endian:
 *   0  seq      uint64
 *   8  ts_ms    int64
 *   16 temp_c   IEEE 754 binary64
 *   24 crc32    of bytes 0..23 (the IEEE polynomial, as zlib's crc32)
 *   28 magic    "TSP1"
 * in strictly increasing seq. A record is written with one write(2) on an O_APPEND descriptor
 * and fdatasync'ed before the reading is published. A crash can leave a torn last record; open
 * finds the first record that is short, fails its CRC or breaks the order, and cuts the file
 * there (everything before it was synced and is intact).
 *
 * DIR/spool/spool.state holds "acked N\ndropped M\n": the highest end-to-end ack and the highest
 * seq dropped from a full spool. Records at or below max(acked, dropped) are dead. The state is
 * replaced atomically (trellis_file_write_atomic) BEFORE any dead record is removed, and the
 * file is compacted (live records rewritten atomically) once dead records outnumber live ones,
 * so it never grows beyond about twice the spool's capacity.
 *
 * The next seq is one above the highest of: any record, acked, dropped. So seq survives every
 * restart, including one right after a compaction that left the file empty.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "trellis/fsutil.h"
#include "trellis/log.h"

#define RECORD_LEN  32
#define MAGIC       "TSP1"
#define STATE_MAX   256
#define COMPACT_MIN 64

static uint32_t crc32_ieee(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return c ^ 0xFFFFFFFFu;
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void encode(const tr__reading_t *r, uint8_t out[RECORD_LEN])
{
    uint64_t bits = 0;
    memcpy(&bits, &r->temp_c, sizeof(bits));
    put64(out, (uint64_t)r->seq);
    put64(out + 8, (uint64_t)r->ts_ms);
    put64(out + 16, bits);
    uint32_t crc = crc32_ieee(out, 24);
    for (int i = 0; i < 4; i++)
        out[24 + i] = (uint8_t)(crc >> (8 * i));
    memcpy(out + 28, MAGIC, 4);
}

static bool decode(const uint8_t in[RECORD_LEN], tr__reading_t *r)
{
    uint32_t crc = 0;
    for (int i = 0; i < 4; i++)
        crc |= (uint32_t)in[24 + i] << (8 * i);
    if (memcmp(in + 28, MAGIC, 4) != 0 || crc != crc32_ieee(in, 24))
        return false;
    uint64_t bits = get64(in + 16);
    r->seq = (int64_t)get64(in);
    r->ts_ms = (int64_t)get64(in + 8);
    memcpy(&r->temp_c, &bits, sizeof(bits));
    return r->seq >= 1 && r->seq <= TRELLIS_TELEMETRY_SEQ_MAX;
}

static trellis_err_t spool_path(const tr__spool_t *s, const char *name,
                                char out[static TR__AGENT_PATH_MAX])
{
    int n = snprintf(out, TR__AGENT_PATH_MAX, "%s/%s", s->dir, name);
    return n > 0 && n < TR__AGENT_PATH_MAX ? TRELLIS_OK : TRELLIS_ERR_INVALID_ARG;
}

int64_t tr__spool_floor(const tr__spool_t *s)
{
    return s->acked > s->dropped_to ? s->acked : s->dropped_to;
}

const tr__reading_t *tr__spool_at(const tr__spool_t *s, size_t i)
{
    if (s == NULL || i >= s->count)
        return NULL;
    return &s->ring[(s->head + i) % s->cap];
}

static trellis_err_t write_state(tr__spool_t *s)
{
    char path[TR__AGENT_PATH_MAX];
    char text[STATE_MAX];
    int n = snprintf(text, sizeof(text), "acked %" PRId64 "\ndropped %" PRId64 "\n", s->acked,
                     s->dropped_to);
    if (n < 0 || (size_t)n >= sizeof(text) || spool_path(s, "spool.state", path) != TRELLIS_OK)
        return TRELLIS_ERR_INTERNAL;
    return trellis_file_write_atomic(path, text, (size_t)n, TRELLIS_FILE_SECRET);
}

static trellis_err_t read_state(tr__spool_t *s)
{
    char path[TR__AGENT_PATH_MAX];
    uint8_t *buf = NULL;
    size_t len = 0;
    long long acked = 0, dropped = 0;
    trellis_err_t err = spool_path(s, "spool.state", path);

    if (err == TRELLIS_OK)
        err = trellis_file_read_all(path, STATE_MAX, &buf, &len);
    if (err == TRELLIS_ERR_NOT_FOUND)
        return TRELLIS_OK; /* a new spool */
    if (err != TRELLIS_OK)
        return err;
    int consumed = 0;
    if (sscanf((const char *)buf, "acked %lld\ndropped %lld\n%n", &acked, &dropped, &consumed) !=
            2 ||
        (size_t)consumed != len || acked < 0 || dropped < 0 || acked > TRELLIS_TELEMETRY_SEQ_MAX ||
        dropped > TRELLIS_TELEMETRY_SEQ_MAX)
        err = TRELLIS_ERR_PARSE;
    else {
        s->acked = acked;
        s->dropped_to = dropped;
    }
    trellis_file_buffer_free(buf, len);
    return err;
}

/* Drops the oldest live reading (the spool is full). */
static void drop_oldest(tr__spool_t *s)
{
    const tr__reading_t *old = &s->ring[s->head];
    s->dropped_to = old->seq;
    s->dropped_total++;
    trellis_log(TRELLIS_LOG_WARN, "spool.drop", TRELLIS_KV_INT("seq", old->seq),
                TRELLIS_KV_INT("capacity", (long long)s->cap),
                TRELLIS_KV_INT("dropped_total", (long long)s->dropped_total));
    s->head = (s->head + 1) % s->cap;
    s->count--;
}

static void push_live(tr__spool_t *s, const tr__reading_t *r)
{
    if (s->count == s->cap)
        drop_oldest(s);
    s->ring[(s->head + s->count) % s->cap] = *r;
    s->count++;
}

/* Rewrites spool.dat with the live readings only, after the state that makes the others dead is
 * durable. */
static trellis_err_t compact(tr__spool_t *s)
{
    char path[TR__AGENT_PATH_MAX];
    uint8_t *buf = NULL;
    trellis_err_t err = write_state(s);

    if (err != TRELLIS_OK)
        goto out;
    err = spool_path(s, "spool.dat", path);
    if (err != TRELLIS_OK)
        goto out;
    buf = malloc(s->count > 0 ? s->count * RECORD_LEN : 1);
    if (buf == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < s->count; i++)
        encode(tr__spool_at(s, i), buf + i * RECORD_LEN);
    err = trellis_file_write_atomic(path, buf, s->count * RECORD_LEN, TRELLIS_FILE_SECRET);
    if (err != TRELLIS_OK)
        goto out;
    /* The old descriptor points at the replaced file. */
    if (s->fd >= 0)
        close(s->fd);
    s->fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (s->fd < 0) {
        err = TRELLIS_ERR_IO;
        goto out;
    }
    s->file_records = s->count;
    err = TRELLIS_OK;
out:
    free(buf);
    return err;
}

trellis_err_t tr__spool_open(tr__spool_t *s, const char *state_dir, size_t cap, bool readonly,
                             trellis_reason_t *reason)
{
    char path[TR__AGENT_PATH_MAX];
    uint8_t rec[RECORD_LEN];
    off_t good = 0;
    int rfd = -1;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    memset(s, 0, sizeof(*s));
    s->fd = -1;
    if (state_dir == NULL || cap == 0 || cap > TR__AGENT_SPOOL_LIMIT ||
        snprintf(s->dir, sizeof(s->dir), "%s/%s", state_dir, TR__AGENT_SPOOL_DIR) >=
            (int)sizeof(s->dir)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "bad spool directory or size");
        goto out;
    }
    s->cap = cap;
    s->ring = calloc(cap, sizeof(*s->ring));
    if (s->ring == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    err = readonly ? TRELLIS_OK : trellis_mkdir_p(s->dir, 0700);
    if (err == TRELLIS_OK)
        err = read_state(s);
    if (err != TRELLIS_OK) {
        err = trellis_reason_set(reason, err, "spool %s: %s", s->dir, trellis_err_message(err));
        goto out;
    }
    s->last_seq = tr__spool_floor(s);
    err = spool_path(s, "spool.dat", path);
    if (err != TRELLIS_OK)
        goto out;
    rfd = open(path, readonly ? O_RDONLY | O_CLOEXEC : O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
    if (rfd < 0 && readonly && errno == ENOENT) {
        err = TRELLIS_OK; /* nothing spooled yet */
        goto out;
    }
    if (rfd < 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_IO, "spool %s: %s", path, strerror(errno));
        goto out;
    }
    int64_t prev = 0;
    for (;;) {
        tr__reading_t r;
        ssize_t n = read(rfd, rec, RECORD_LEN);
        if (n == 0)
            break;
        /* Records at or below the floor are dead but intact (a compaction was cut short);
         * only a short record, a bad CRC or a break in the order ends the good part. */
        if (n != RECORD_LEN || !decode(rec, &r) || r.seq <= prev) {
            /* A reader racing `run` may see a record half written: not damage. */
            if (!readonly)
                trellis_log(TRELLIS_LOG_WARN, "spool.truncate",
                            TRELLIS_KV_INT("records_kept", (long long)s->file_records));
            break;
        }
        prev = r.seq;
        s->file_records++;
        good += RECORD_LEN;
        if (r.seq > s->last_seq)
            s->last_seq = r.seq;
        if (r.seq > tr__spool_floor(s))
            push_live(s, &r);
    }
    close(rfd);
    rfd = -1;
    if (readonly) {
        err = TRELLIS_OK;
        goto out;
    }
    if (truncate(path, good) != 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_IO, "spool %s: %s", path, strerror(errno));
        goto out;
    }
    s->fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (s->fd < 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_IO, "spool %s: %s", path, strerror(errno));
        goto out;
    }
    err = TRELLIS_OK;
out:
    if (rfd >= 0)
        close(rfd);
    if (err != TRELLIS_OK)
        tr__spool_close(s);
    return err;
}

void tr__spool_close(tr__spool_t *s)
{
    if (s == NULL)
        return;
    /* Leave the acknowledgements durable, so `status` and the next start see them. */
    if (s->fd >= 0 && s->ring != NULL && s->file_records > s->count && compact(s) != TRELLIS_OK)
        trellis_log(TRELLIS_LOG_WARN, "spool.compact_failed",
                    TRELLIS_KV_STR("error", strerror(errno)));
    if (s->fd >= 0)
        close(s->fd);
    free(s->ring);
    memset(s, 0, sizeof(*s));
    s->fd = -1;
}

trellis_err_t tr__spool_append(tr__spool_t *s, int64_t ts_ms, double temp_c, tr__reading_t *out)
{
    uint8_t rec[RECORD_LEN];
    tr__reading_t r = {.seq = s->last_seq + 1, .ts_ms = ts_ms, .temp_c = temp_c};

    if (s->fd < 0 || r.seq > TRELLIS_TELEMETRY_SEQ_MAX)
        return TRELLIS_ERR_INVALID_ARG;
    encode(&r, rec);
    /* Durable before anyone hears of it: a reading published and then lost in a power cut
     * would leave the ingest waiting for a seq this device no longer has. */
    if (write(s->fd, rec, RECORD_LEN) != RECORD_LEN || fdatasync(s->fd) != 0) {
        trellis_log(TRELLIS_LOG_ERROR, "spool.write_failed",
                    TRELLIS_KV_STR("error", strerror(errno)));
        return TRELLIS_ERR_IO;
    }
    s->last_seq = r.seq;
    s->file_records++;
    push_live(s, &r);
    if (out != NULL)
        *out = r;
    /* Dropped readings stay in the file until a compaction; keep it bounded. */
    if (s->file_records >= 2 * s->cap + COMPACT_MIN)
        return compact(s);
    return TRELLIS_OK;
}

trellis_err_t tr__spool_ack(tr__spool_t *s, int64_t seq)
{
    if (seq <= s->acked)
        return TRELLIS_OK;
    if (seq > TRELLIS_TELEMETRY_SEQ_MAX)
        return TRELLIS_ERR_INVALID_ARG;
    s->acked = seq;
    if (seq > s->last_seq) {
        /* The store knows readings this device does not remember (its state was reset): carry
         * on above them, or new readings would be taken for duplicates. */
        trellis_log(TRELLIS_LOG_WARN, "spool.seq_resync", TRELLIS_KV_INT("ack", seq),
                    TRELLIS_KV_INT("last_seq", s->last_seq));
        s->last_seq = seq;
    }
    while (s->count > 0 && s->ring[s->head].seq <= seq) {
        s->head = (s->head + 1) % s->cap;
        s->count--;
    }
    size_t dead = s->file_records - s->count;
    if (dead >= COMPACT_MIN && dead >= s->count)
        return compact(s);
    /* Not durable yet: a crash now only resends readings the ingest already has, and it
     * ignores duplicates. The state is written with the next compaction. */
    return TRELLIS_OK;
}
