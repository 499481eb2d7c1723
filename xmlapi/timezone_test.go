package xmlapi

import (
	"context"
	"sync"
	"testing"
	"time"

	"switchboard/client"
	"switchboard/wire"
)

// tzCase is what one WebEx timeZoneID must give: the GMT offset, in
// minutes, of its table (docs/webex-xml.md §6), and the offsets in force
// on 15 January and 15 July 2026 at noon local time.
type tzCase struct {
	table, jan, jul int
}

var tzCases = [MaxTimeZoneID + 1]tzCase{
	0: {-720, -720, -720}, 1: {-660, -660, -660}, 2: {-600, -600, -600}, 3: {-540, -540, -480},
	4: {-480, -480, -420}, 5: {-420, -420, -420}, 6: {-420, -420, -360}, 7: {-360, -360, -300},
	8: {-360, -360, -360}, 9: {-360, -360, -360}, 10: {-300, -300, -300}, 11: {-300, -300, -240},
	12: {-300, -300, -240}, 13: {-240, -240, -180}, 14: {-240, -240, -240}, 15: {-210, -210, -150},
	16: {-180, -180, -180}, 17: {-180, -180, -180}, 18: {-120, -120, -120}, 19: {-60, -60, 0},
	20: {0, 60, 60}, 21: {0, 0, 60}, 22: {60, 60, 120}, 23: {60, 60, 120},
	24: {60, 60, 120}, 25: {60, 60, 120}, 26: {120, 120, 180}, 27: {120, 120, 180},
	28: {120, 120, 180}, 29: {120, 120, 120}, 30: {120, 120, 180}, 31: {120, 120, 180},
	32: {180, 180, 180}, 33: {180, 180, 180}, 34: {180, 180, 180}, 35: {210, 210, 210},
	36: {240, 240, 240}, 37: {240, 240, 240}, 38: {270, 270, 270}, 39: {300, 300, 300},
	40: {300, 300, 300}, 41: {330, 330, 330}, 42: {360, 330, 330}, 43: {360, 300, 300},
	44: {420, 420, 420}, 45: {480, 480, 480}, 46: {480, 480, 480}, 47: {480, 480, 480},
	48: {480, 480, 480}, 49: {540, 540, 540}, 50: {540, 540, 540}, 51: {540, 540, 540},
	52: {570, 630, 570}, 53: {570, 570, 570}, 54: {600, 600, 600}, 55: {600, 660, 600},
	56: {600, 600, 600}, 57: {600, 660, 600}, 58: {600, 600, 600}, 59: {660, 660, 660},
	60: {720, 780, 720}, 61: {720, 720, 720},
}

// cityOverTable are the ids whose city has left the table's offset for
// good (timezone.go says why); every other id keeps the table's offset as
// its standard time.
var cityOverTable = map[int]bool{20: true, 42: true, 43: true}

// TestTimeZoneIDs converts a winter and a summer startDate for every
// timeZoneID: ids with daylight saving time move by an hour between the
// two (the northern and the southern hemisphere each way round), the
// others keep one offset, and standard time is the table's offset.
func TestTimeZoneIDs(t *testing.T) {
	for id, c := range tzCases {
		for _, d := range []struct {
			month time.Month
			off   int
		}{{time.January, c.jan}, {time.July, c.jul}} {
			local := time.Date(2026, d.month, 15, 12, 0, 0, 0, time.UTC).Unix()
			want := local - int64(d.off)*60
			if got := utcFromLocal(local, id); got != want {
				t.Errorf("id %d (%s), %s: UTC %v, want %v (offset %+d min)", id, TimeZoneName(id), d.month,
					time.Unix(got, 0).UTC(), time.Unix(want, 0).UTC(), d.off)
			}
		}
		standard := min(c.jan, c.jul)
		if !cityOverTable[id] && standard != c.table {
			t.Errorf("id %d: standard offset %+d, the table says %+d", id, standard, c.table)
		}
		if TimeZoneName(id) == "" {
			t.Errorf("id %d has no zone", id)
		}
	}
	if TimeZoneName(-1) != "" || TimeZoneName(MaxTimeZoneID+1) != "" {
		t.Error("a name for an id out of range")
	}
}

// TestTimeZoneChangeHours pins the decision for the wall clocks that are
// not one instant, on the 2026 changes in San Jose (id 4) and Sydney (55).
func TestTimeZoneChangeHours(t *testing.T) {
	wall := func(y int, m time.Month, d, h, mi int) int64 { return time.Date(y, m, d, h, mi, 0, 0, time.UTC).Unix() }
	utc := func(y int, m time.Month, d, h, mi int) int64 { return time.Date(y, m, d, h, mi, 0, 0, time.UTC).Unix() }
	for _, tc := range []struct {
		name      string
		tz        int
		local, to int64
	}{
		// 02:30 on 8 March does not exist: read as PST, i.e. 03:30 PDT.
		{"skipped", 4, wall(2026, 3, 8, 2, 30), utc(2026, 3, 8, 10, 30)},
		{"before the skip", 4, wall(2026, 3, 8, 1, 59), utc(2026, 3, 8, 9, 59)},
		{"after the skip", 4, wall(2026, 3, 8, 3, 0), utc(2026, 3, 8, 10, 0)},
		// 01:30 on 1 November happens twice: the first, still PDT.
		{"twice", 4, wall(2026, 11, 1, 1, 30), utc(2026, 11, 1, 8, 30)},
		{"after the repeat", 4, wall(2026, 11, 1, 2, 0), utc(2026, 11, 1, 10, 0)},
		// Sydney: 02:30 on 4 October 2026 is skipped (AEST → AEDT);
		// 02:30 on 5 April 2026 happens twice (first: AEDT, +11:00).
		{"southern skipped", 55, wall(2026, 10, 4, 2, 30), utc(2026, 10, 3, 16, 30)},
		{"southern twice", 55, wall(2026, 4, 5, 2, 30), utc(2026, 4, 4, 15, 30)},
	} {
		if got := utcFromLocal(tc.local, tc.tz); got != tc.to {
			t.Errorf("%s: %v, want %v", tc.name, time.Unix(got, 0).UTC(), time.Unix(tc.to, 0).UTC())
		}
	}
}

// specBackend records the spec of every allocation and update.
type specBackend struct {
	*fakeBackend
	mu    sync.Mutex
	specs []wire.Spec
}

func (b *specBackend) Allocate(ctx context.Context, req *wire.AllocateRequest) (client.Allocation, error) {
	b.mu.Lock()
	b.specs = append(b.specs, req.Spec)
	b.mu.Unlock()
	return b.fakeBackend.Allocate(ctx, req)
}

func (b *specBackend) Update(ctx context.Context, key uint64, spec *wire.Spec, meta []byte) (client.Reservation, error) {
	b.mu.Lock()
	b.specs = append(b.specs, *spec)
	b.mu.Unlock()
	return b.fakeBackend.Update(ctx, key, spec, meta)
}

// TestStartDateHonoursDaylightSaving is the case: a July meeting
// in Pacific time (id 4) starts at 17:00 UTC for 10:00 local, not 18:00;
// a January one at 18:00. The bridge gets UTC; Get gives the startDate and
// timeZoneID back as the client wrote them.
func TestStartDateHonoursDaylightSaving(t *testing.T) {
	be := &specBackend{fakeBackend: newFakeBackend()}
	fe := startFrontEnd(t, testConfig(t), be)
	for _, tc := range []struct {
		date string
		want time.Time
	}{
		{"07/15/2026 10:00:00", time.Date(2026, 7, 15, 17, 0, 0, 0, time.UTC)},
		{"01/15/2026 10:00:00", time.Date(2026, 1, 15, 18, 0, 0, 0, time.UTC)},
	} {
		body := "<metaData><confName>DST</confName></metaData><schedule><startDate>" + tc.date + "</startDate><timeZoneID>4</timeZoneID></schedule>"
		key := createKey(t, post(t, fe, envelope(hostSec, typeCreate, body)))
		be.mu.Lock()
		got := be.specs[len(be.specs)-1]
		be.mu.Unlock()
		if got.Start != tc.want.Unix() || got.TimeZone != 4 {
			t.Errorf("%s: bridge start %v tz %d, want %v tz 4", tc.date, time.Unix(got.Start, 0).UTC(), got.TimeZone, tc.want)
		}
		r := post(t, fe, envelope(hostSec, typeGet, keyBody(key)))
		mustSucceed(t, r)
		if d, z := r.root.text("body/bodyContent/schedule/startDate"), r.root.text("body/bodyContent/schedule/timeZoneID"); d != tc.date || z != "4" {
			t.Errorf("Get: startDate %q timeZoneID %q, want %q and 4", d, z, tc.date)
		}
	}
}
