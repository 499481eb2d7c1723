package main

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"time"

	"switchboard/wire"
)

// newRunID returns 8 random bytes in hex: it makes this run's idempotency
// tokens distinct from every earlier run's, so nothing is replayed.
func newRunID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b[:])
}

// newRequestBuilder returns the requests of one run: token
// "sbbench-<runID>-<seq>" (unique), name "<prefix> <seq>", a one-hour
// weekly meeting starting a day after start, and metaBytes of meta shared
// read-only by every request.
func newRequestBuilder(runID, prefix string, metaBytes int, start time.Time) requestFunc {
	meta := make([]byte, metaBytes)
	for i := range meta {
		meta[i] = 'a' + byte(i*7%26)
	}
	tokenPrefix := "sbbench-" + runID + "-"
	begins := start.Add(24 * time.Hour).Truncate(time.Hour).Unix()
	return func(seq int64) *wire.AllocateRequest {
		return &wire.AllocateRequest{
			Token: strconv.AppendInt([]byte(tokenPrefix), seq, 10),
			Spec: wire.Spec{
				Name:             strconv.AppendInt(append([]byte(prefix), ' '), seq, 10),
				Start:            begins,
				TimeZone:         -1,
				Duration:         60,
				Tone:             wire.ToneBeep,
				Repeat:           wire.Recurrence{Kind: wire.RepeatWeekly, Interval: 1, Days: 1 << 2},
				FullAttendees:    10,
				LimitedAttendees: 40,
			},
			Meta: meta,
		}
	}
}
