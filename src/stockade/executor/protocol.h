/* Generated from src/stockade/executor/protocol.py by `python -m
   stockade.executor.protocol`: edit that file, not this one. */
#ifndef STOCKADE_PROTOCOL_H
#define STOCKADE_PROTOCOL_H

/* sync pipe, runtime -> child: the id maps are written, go on (also: a closed pipe means the runtime gave up) */
#define MSG_GO 'g'
/* created pipe, child -> runtime: namespaces made, root not built: run the createRuntime/createContainer hooks; sync pipe, runtime -> child: they ran */
#define MSG_HOOKS 'h'
/* created pipe, child -> runtime: set up, waiting at the gate */
#define MSG_CREATED 'c'
/* exec.fifo (the gate), runtime -> child: start; followed by an 8-byte little-endian length and the state JSON for startContainer hooks */
#define MSG_START 's'
/* status pipe, init -> runtime: e<decimal exit status> */
#define MSG_EXITED 'e'
/* status pipe, init -> runtime: s<decimal signal number> */
#define MSG_KILLED 's'
/* sync pipe, runtime -> executor: the cgroup directories it reported (planned, then made) are recorded in the container's state: go on */
#define MSG_RECORDED 'r'
/* sync pipe, runtime -> executor or child: the runtime gave up (it removes what it recorded): undo and exit */
#define MSG_GIVE_UP 'x'
/* error pipe, child -> runtime: set-up done, the payload is being started (anything else there is a failed step's message) */
#define MSG_EXECUTING '\x00'
#define MSG_START_LENGTH_BYTES 8
/* the learner's listener hand-off: sendmsg flags the recorder allows */
#define LISTENER_SEND_FLAGS 0x4040

#endif
