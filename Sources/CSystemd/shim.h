// libsystemd, as the `Systemd` module sees it. Nothing else imports this module.
#ifndef ZPUB_CSYSTEMD_SHIM_H
#define ZPUB_CSYSTEMD_SHIM_H

#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

#endif
