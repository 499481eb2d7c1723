package route

// validName reports whether s is a well-formed tier name: 1 to 64 of
// a-z, 0-9 and '-'. The orphan journal rejects a record naming anything
// else (the daemon's config validates tier names by the same rule).
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}
