/* Helpers shared by the device agent's tests. */
#ifndef TRELLIS_AGENT_TEST_H
#define TRELLIS_AGENT_TEST_H

#include <stdbool.h>
#include <stddef.h>

#include "test_dirs.h"
#include "agent.h"
#include "test_pki.h"

/*
 * Makes a device directory under parent: a file RoT key, factory.json naming the registrar URL
 * (may be NULL) and pinning ca_pem_file (may be NULL). Writes the device id into id.
 */
void agent_test_device(const char *parent, const char *name, const char *registrar_url,
                       const char *ca_pem_file, char *dir_out, size_t dir_size,
                       char id[static TRELLIS_DEVICE_ID_LEN + 1]);

/* Gives the device in dir an identity.pem issued by the test PKI's root for CN id. */
void agent_test_identity(trellis_test_pki_t *pki, const char *dir, const char *id);

/* Default agent configuration (the table's defaults). */
void agent_test_config(tr__agent_config_t *cfg);

#endif
