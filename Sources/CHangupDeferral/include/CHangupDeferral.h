// Keeps what a peer sent before it hung up, where libzmq 4.3.4 would drop it: zpubd only.
//
// libzmq stops reading a connection whose receive queue is full (the socket's ZMQ_RCVHWM). A
// peer that hangs up meanwhile makes epoll report EPOLLHUP, which libzmq reports to the engine
// as input; an engine whose input is stopped then takes the hang-up for an error, stops
// reading for good, and closes the connection as soon as its queue has room again: whatever
// the peer wrote that was still in the kernel's socket buffer is lost (libzmq issue 4660, open
// in master). A Unix socket reports EPOLLHUP as soon as its peer closes; TCP only once both
// directions are shut, so in practice the ipc transport loses: a producer that sends a burst to
// a paused or busy zpubd over ipc and exits lost its last messages, with exit status 0 (98 of
// 10,100 with PAUSE, every run).
//
// This file wraps epoll_create, epoll_create1, epoll_ctl and epoll_wait (the executable's
// definitions take precedence over glibc's for libzmq's calls). Only the epoll sets libzmq
// creates are touched, and only when zpubd has called `hangup_deferral_enable`: a hang-up
// reported for a descriptor libzmq is not reading is not passed on; the descriptor is taken out
// of the set until libzmq asks to read it again, when it goes back in and libzmq reads the rest
// up to the end of the stream (read() returning 0). A hang-up reported with input is passed on
// as input alone: libzmq would hand the engine both, one after the other, and when the first
// fills the queue the second meets stopped input (the same loss, after a few rounds). A reset
// (EPOLLERR with the hang-up: the peer closed with data from zpubd unread, say subscriptions
// a publisher never read) is treated the same, but held back only from a connection that asks
// for neither input nor output: one that is connecting asks for output and learns from the
// reset that it failed. Linux hands out what a socket holds before its error.
//
// It also wraps accept4 and accept, for libzmq's listeners that meet a full descriptor table
// (EMFILE, ENFILE): such a listener leaves its set for 100 ms, as libzmq's TCP listener would
// otherwise retry at once for as long as a connection is queued (on both cores, with an
// ACCEPT_FAILED monitor event each time); and an ipc listener's EMFILE is told to libzmq as
// ECONNABORTED, since 4.3.4's ipc listener aborts the process on EMFILE. The connection waits
// in the kernel's queue. zpubd's descriptor guard keeps the table from filling where the hard
// limit leaves room (docs/reliability.md); these are for where it does not.
#ifndef ZPUB_CHANGUPDEFERRAL_H
#define ZPUB_CHANGUPDEFERRAL_H

/// Turns the deferral on for the epoll sets libzmq creates from now on (create the ZeroMQ
/// context after this). Returns 1 when on, 0 when the environment turned it off
/// (ZPUBD_HANGUP_DEFERRAL=off) or the descriptor table could not be allocated.
int hangup_deferral_enable(void);

#endif
