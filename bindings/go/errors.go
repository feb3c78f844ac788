package bhsync

// #include "bhsync.h"
import "C"

import "fmt"

// Status is a bhs_status code of the C ABI. A Status is an error value itself, so a
// failure can be tested with errors.Is(err, bhsync.ErrNotFound).
type Status uint32

// The status codes of include/bhsync.h (a test checks that the two lists agree).
const (
	StatusOK              Status = C.BHS_OK
	StatusInvalidArgument Status = C.BHS_INVALID_ARGUMENT
	StatusNotFound        Status = C.BHS_NOT_FOUND
	StatusProofInvalid    Status = C.BHS_PROOF_INVALID
	StatusInternal        Status = C.BHS_INTERNAL
	StatusTimeout         Status = C.BHS_TIMEOUT
	StatusClosed          Status = C.BHS_CLOSED
	StatusBusy            Status = C.BHS_BUSY
	StatusIO              Status = C.BHS_IO
	StatusWrongMergeRule  Status = C.BHS_WRONG_MERGE_RULE
	StatusNotLeader       Status = C.BHS_NOT_LEADER
	StatusReadOnly        Status = C.BHS_READ_ONLY
	StatusIndeterminate   Status = C.BHS_INDETERMINATE
	StatusWrongMode       Status = C.BHS_WRONG_MODE
)

// The errors to compare with errors.Is.
var (
	// ErrInvalidArgument: a nil or oversized input, a bad name, setting or encoding.
	ErrInvalidArgument error = StatusInvalidArgument
	// ErrNotFound: the key, category or peer does not exist.
	ErrNotFound error = StatusNotFound
	// ErrProofInvalid: a proof decoded but leads to another root.
	ErrProofInvalid error = StatusProofInvalid
	// ErrInternal: a bug was caught at the boundary; the node must only be closed.
	ErrInternal error = StatusInternal
	// ErrTimeout: a sync did not finish in time.
	ErrTimeout error = StatusTimeout
	// ErrClosed: the node is closed (by Close, or its engine stopped).
	ErrClosed error = StatusClosed
	// ErrBusy: the node's command queue is full; retry shortly.
	ErrBusy error = StatusBusy
	// ErrIO: a socket, file or thread could not be set up (the message says which).
	ErrIO error = StatusIO
	// ErrWrongMergeRule: the category's merge rule does not allow the call (a counter
	// in a last-writer-wins category, for example).
	ErrWrongMergeRule error = StatusWrongMergeRule
	// ErrNotLeader: a strong category and this node is not its leader (the message
	// names the leader when known); nothing was written.
	ErrNotLeader error = StatusNotLeader
	// ErrReadOnly: a strong category and no quorum is reachable from here.
	ErrReadOnly error = StatusReadOnly
	// ErrIndeterminate: a strong write whose outcome is unknown (leader lost, timeout).
	ErrIndeterminate error = StatusIndeterminate
	// ErrWrongMode: the call does not apply to the category's mode.
	ErrWrongMode error = StatusWrongMode
)

// knownStatuses lists every code this package names (compared with the header in tests).
var knownStatuses = []Status{
	StatusOK, StatusInvalidArgument, StatusNotFound, StatusProofInvalid, StatusInternal,
	StatusTimeout, StatusClosed, StatusBusy, StatusIO, StatusWrongMergeRule,
	StatusNotLeader, StatusReadOnly, StatusIndeterminate, StatusWrongMode,
}

// String is the library's description of the code (bhs_status_str).
func (s Status) String() string { return C.GoString(C.bhs_status_str(C.bhs_status(s))) }

// Error makes a Status an error.
func (s Status) Error() string { return "bhsync: " + s.String() }

// Error is a failed call: which operation, its status and the library's message
// (bhs_last_error of the calling thread).
type Error struct {
	Op      string
	Status  Status
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("bhsync: %s: %s", e.Op, e.Status.String())
	}
	return fmt.Sprintf("bhsync: %s: %s (%s)", e.Op, e.Message, e.Status.String())
}

// Unwrap gives the Status, so errors.Is(err, bhsync.ErrNotFound) works.
func (e *Error) Unwrap() error { return e.Status }

// check turns a status into an error. It must run on the OS thread that made the call,
// since bhs_last_error is thread-local: callers wrap the C call and check in one
// function, with the thread locked (see call).
func check(op string, status C.bhs_status) error {
	if status == C.BHS_OK {
		return nil
	}
	return &Error{Op: op, Status: Status(status), Message: C.GoString(C.bhs_last_error())}
}

// invalid is an invalid-argument error found on the Go side, before any C call.
func invalid(op, message string) error {
	return &Error{Op: op, Status: StatusInvalidArgument, Message: message}
}
