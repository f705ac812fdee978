// The libzmq C API, as the `ZeroMQ` module sees it. Nothing else imports this module.
#ifndef ZPUB_CZEROMQ_SHIM_H
#define ZPUB_CZEROMQ_SHIM_H

#include <zmq.h>

// Options that Debian's libzmq 4.3.4 accepts although its headers mark them draft (it is built
// without ZMQ_BUILD_DRAFT_API). Probed on these machines; see ../shared/NOTES.md.
#define CZMQ_XPUB_MANUAL_LAST_VALUE 98
#define CZMQ_ZAP_ENFORCE_DOMAIN 93
#define CZMQ_METADATA 95

#endif
