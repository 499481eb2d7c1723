package xmlapi

// tzOffsetMin is the GMT offset, in minutes, of each WebEx timeZoneID
// (docs/webex-xml.md §6, table A.1 of XML API 5.9). 24 and 27 are deprecated
// aliases of 23 and 26 and carry their offsets.
//
// Decision: the offsets are the table's fixed (standard-time) offsets;
// daylight saving time is not applied. The table gives nothing else, WebEx
// never documented how its ids map to DST rules, and a fixed offset is
// deterministic: the same startDate and timeZoneID always give the same
// UTC start, which the bridge receives together with the timeZoneID so
// that it can present the time as it wishes.
var tzOffsetMin = [62]int16{
	0: -12 * 60,
	1: -11 * 60,
	2: -10 * 60,
	3: -9 * 60,
	4: -8 * 60,
	5: -7 * 60, 6: -7 * 60,
	7: -6 * 60, 8: -6 * 60, 9: -6 * 60,
	10: -5 * 60, 11: -5 * 60, 12: -5 * 60,
	13: -4 * 60, 14: -4 * 60,
	15: -(3*60 + 30),
	16: -3 * 60, 17: -3 * 60,
	18: -2 * 60,
	19: -1 * 60,
	20: 0, 21: 0,
	22: 60, 23: 60, 24: 60, 25: 60,
	26: 120, 27: 120, 28: 120, 29: 120, 30: 120, 31: 120,
	32: 180, 33: 180, 34: 180,
	35: 3*60 + 30,
	36: 240, 37: 240,
	38: 4*60 + 30,
	39: 300, 40: 300,
	41: 5*60 + 30,
	42: 360, 43: 360,
	44: 420,
	45: 480, 46: 480, 47: 480, 48: 480,
	49: 540, 50: 540, 51: 540,
	52: 9*60 + 30, 53: 9*60 + 30,
	54: 600, 55: 600, 56: 600, 57: 600, 58: 600,
	59: 660,
	60: 720, 61: 720,
}

// MaxTimeZoneID is the largest WebEx timeZoneID.
const MaxTimeZoneID = len(tzOffsetMin) - 1

// DefaultTimeZoneID is the time zone of an account that names none: 4,
// GMT-08:00 Pacific (San Jose), the WebEx default.
const DefaultTimeZoneID = 4

// utcFromLocal converts a wall-clock time in zone tz, given as Unix seconds
// of the same wall clock read as UTC, to Unix seconds UTC.
func utcFromLocal(local int64, tz int) int64 {
	return local - int64(tzOffsetMin[tz])*60
}
