/*
 * `trellis broker`: the Mosquitto configuration of design.md §3 (config) and telling a running
 * broker about a new CRL (reload). docs/broker.md explains the generated file line by line.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "commands.h"
#include "trellis/conf.h"
#include "trellis/fsutil.h"
#include "trellis/ingest.h"

#define PID_FILE_MAX 64

typedef struct {
    char ca[PATH_MAX];
    char crl[PATH_MAX];
    char cert[PATH_MAX];
    char key[PATH_MAX];
    char out[PATH_MAX];
    char bind[64];
    int port;
    int service_port;
    char ingest_name[TRELLIS_INGEST_NAME_MAX];
    char user[64];
    long long max_queued;
    size_t max_queued_bytes;
    int max_inflight;
    int max_packet;
} broker_config_t;

#define C broker_config_t
static const trellis_conf_option_t config_options[] = {
    TRELLIS_CONF_ROW_STRING("ca", C, ca, "", 0,
                            "the registrar's device CA chain (PEM): devices must chain to it"),
    TRELLIS_CONF_ROW_STRING("crl", C, crl, "", 0,
                            "the registrar's CRL file (PEM), read at start and on reload"),
    TRELLIS_CONF_ROW_STRING("cert", C, cert, "", 0,
                            "broker server certificate chain for devices; empty: issue one from "
                            "the service CA"),
    TRELLIS_CONF_ROW_STRING("key", C, key, "", 0, "the key of --cert"),
    TRELLIS_CONF_ROW_STRING("out", C, out, "", 0,
                            "directory for mosquitto.conf, acl and the service identities"),
    TRELLIS_CONF_ROW_STRING("bind", C, bind, "127.0.0.1", 0, "address both listeners bind"),
    TRELLIS_CONF_ROW_INT("port", C, port, "8883", 1, 65535, "device listener (mutual TLS)"),
    TRELLIS_CONF_ROW_INT("service-port", C, service_port, "0", 0, 65535,
                         "ingest listener (mutual TLS, service CA); 0: --port + 1"),
    TRELLIS_CONF_ROW_STRING("ingest-name", C, ingest_name, "ingest", 0,
                            "CN of the ingest's certificate and its user in the ACL"),
    TRELLIS_CONF_ROW_STRING("user", C, user, "", 0,
                            "user mosquitto runs as when started as root; empty: whoever runs "
                            "this command (it must read the keys)"),
    TRELLIS_CONF_ROW_INT("max-queued", C, max_queued, "100000", 100, 100000000,
                         "QoS 1 messages queued per client before the broker drops"),
    TRELLIS_CONF_ROW_SIZE("max-queued-bytes", C, max_queued_bytes, "64M", 1024,
                          16LL * 1024 * 1024 * 1024, "bytes queued per client before it drops"),
    TRELLIS_CONF_ROW_INT("max-inflight", C, max_inflight, "1000", 1, 65535,
                         "QoS 1 messages in flight towards one client"),
    TRELLIS_CONF_ROW_INT("max-packet", C, max_packet, "4096", 512, 268435455,
                         "largest MQTT packet accepted, in bytes"),
};
#undef C

static const trellis_conf_spec_t config_spec = {
    .program = "trellis broker config",
    .summary = "Write a Mosquitto 2.0 configuration for the device CA, its CRL and the ingest.",
    .args = NULL,
    .section = "broker",
    .env_prefix = NULL,
    .default_path = NULL,
    .cfg_size = sizeof(broker_config_t),
    .options = config_options,
    .n_options = sizeof(config_options) / sizeof(config_options[0]),
};

static int broker_config(int argc, char **argv)
{
    static const char what[] = "broker config";
    broker_config_t c;
    trellis_conf_cli_t cli;
    trellis_reason_t reason;

    trellis_err_t err = trellis_conf_load(&config_spec, &c, &argc, argv, &cli, &reason);
    if (err != TRELLIS_OK)
        return err == TRELLIS_ERR_USAGE ? tr__cli_usage(what, "%s", reason.text)
                                        : tr__cli_fail(what, "%s", reason.text);
    if (cli.help) {
        trellis_conf_print_help(&config_spec, stdout);
        return TR__EXIT_OK;
    }
    if (argc > 1)
        return tr__cli_usage(what, "unexpected argument '%s'", argv[1]);
    if (c.ca[0] == '\0' || c.crl[0] == '\0' || c.out[0] == '\0')
        return tr__cli_usage(what, "--ca, --crl and --out are required");
    const trellis_broker_conf_t conf = {
        .out_dir = c.out,
        .device_ca_file = c.ca,
        .crl_file = c.crl,
        .cert_file = c.cert[0] != '\0' ? c.cert : NULL,
        .key_file = c.key[0] != '\0' ? c.key : NULL,
        .bind = c.bind,
        .port = c.port,
        .service_port = c.service_port,
        .ingest_name = c.ingest_name,
        .run_user = c.user[0] != '\0' ? c.user : NULL,
        .max_queued_messages = c.max_queued,
        .max_queued_bytes = (long long)c.max_queued_bytes,
        .max_inflight_messages = c.max_inflight,
        .max_packet_size = c.max_packet,
    };
    err = trellis_broker_config_write(&conf, &reason);
    if (err != TRELLIS_OK)
        return tr__cli_fail(what, "%s", reason.text);
    printf("wrote %s/%s and %s/%s\n"
           "start the broker: mosquitto -c %s/%s\n"
           "ingest identity:  --ca %s/%s --cert %s/%s --key %s/%s --broker-port %d\n",
           c.out, TRELLIS_BROKER_CONF_FILE, c.out, TRELLIS_BROKER_ACL_FILE, c.out,
           TRELLIS_BROKER_CONF_FILE, c.out, TRELLIS_BROKER_SERVICE_CA, c.out,
           TRELLIS_BROKER_INGEST_CERT, c.out, TRELLIS_BROKER_INGEST_KEY,
           c.service_port != 0 ? c.service_port : c.port + 1);
    return TR__EXIT_OK;
}

static const char reload_help[] =
    "usage: trellis broker reload --dir BROKER_DIR\n"
    "\n"
    "Sends SIGHUP to the mosquitto started with BROKER_DIR/mosquitto.conf (its pid is in\n"
    "BROKER_DIR/mosquitto.pid). Mosquitto 2.0 then re-reads its configuration, the CRL\n"
    "included: devices revoked in it are refused from their next connection on. Sessions that\n"
    "are already open stay open until they disconnect (docs/broker.md).\n";

/* The pid in the broker's pid file, checked to be a running mosquitto. */
static int read_pid(const char *what, const char *dir, pid_t *pid)
{
    char path[PATH_MAX];
    char comm_path[64];
    uint8_t *buf = NULL;
    size_t len = 0;
    char *end = NULL;
    int rc = TR__EXIT_FAILURE;

    if (snprintf(path, sizeof(path), "%s/%s", dir, TRELLIS_BROKER_PID_FILE) >= (int)sizeof(path))
        return tr__cli_usage(what, "--dir is too long");
    trellis_err_t err = trellis_file_read_all(path, PID_FILE_MAX, &buf, &len);
    if (err != TRELLIS_OK) {
        rc = tr__cli_fail(what, "cannot read %s (is the broker running?): %s", path,
                          trellis_err_message(err));
        goto out;
    }
    errno = 0;
    long v = strtol((const char *)buf, &end, 10);
    if (errno != 0 || end == (char *)buf || (*end != '\n' && *end != '\0') || v <= 1 ||
        v > INT_MAX) {
        rc = tr__cli_fail(what, "%s does not hold a process id", path);
        goto out;
    }
    /* A stale pid file must not make us signal an unrelated process. */
    snprintf(comm_path, sizeof(comm_path), "/proc/%ld/comm", v);
    trellis_file_buffer_free(buf, len);
    buf = NULL;
    len = 0;
    err = trellis_file_read_all(comm_path, PID_FILE_MAX, &buf, &len);
    if (err != TRELLIS_OK || strncmp((const char *)buf, "mosquitto", 9) != 0) {
        rc = tr__cli_fail(what, "process %ld from %s is not a running mosquitto", v, path);
        goto out;
    }
    *pid = (pid_t)v;
    rc = TR__EXIT_OK;
out:
    trellis_file_buffer_free(buf, len);
    return rc;
}

static int broker_reload(int argc, char **argv)
{
    static const char what[] = "broker reload";
    const char *dir = NULL;
    pid_t pid = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(reload_help, stdout);
            return TR__EXIT_OK;
        }
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strncmp(argv[i], "--dir=", 6) == 0)
            dir = argv[i] + 6;
        else
            return tr__cli_usage(what, "unexpected argument '%s'", argv[i]);
    }
    if (dir == NULL)
        return tr__cli_usage(what, "--dir is required");
    int rc = read_pid(what, dir, &pid);
    if (rc != TR__EXIT_OK)
        return rc;
    if (kill(pid, SIGHUP) != 0)
        return tr__cli_fail(what, "cannot signal process %ld: %s", (long)pid, strerror(errno));
    printf("sent SIGHUP to mosquitto (pid %ld): it re-reads its configuration and CRL\n",
           (long)pid);
    return TR__EXIT_OK;
}

static const tr__subcommand_t SUBCOMMANDS[] = {
    {"config", broker_config, "write mosquitto.conf, the ACL and the service identities"},
    {"reload", broker_reload, "make a running broker re-read its CRL (SIGHUP)"},
};

static const tr__command_group_t GROUP = {
    .group = "broker",
    .synopsis = "<command> [options]",
    .intro = "The Mosquitto broker between devices and the ingest (docs/broker.md).\n",
    .outro = "\n`trellis broker <command> --help` has the details.\n",
    .subs = SUBCOMMANDS,
    .n_subs = sizeof(SUBCOMMANDS) / sizeof(SUBCOMMANDS[0]),
};

int cmd_broker(int argc, char **argv)
{
    return tr__cli_dispatch(&GROUP, argc, argv);
}
