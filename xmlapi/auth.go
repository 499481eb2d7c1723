package xmlapi

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"strconv"
	"strings"
	"sync"
	"time"
)

// account is a configured host, ready for checks.
type account struct {
	index     int
	webExID   string // as configured; the owner written into records
	email     string
	siteID    int64
	hasSiteID bool
	siteName  string // lower case; "" if none
	partnerID string
	hash      *passwordHash
	tz        int
}

// siteKey identifies the account's site in meeting records.
func (a *account) siteKey() string {
	if a.hasSiteID {
		return "id:" + strconv.FormatInt(a.siteID, 10)
	}
	return "name:" + a.siteName
}

// credentials is what a securityContext carried.
type credentials struct {
	present     bool // a securityContext element was seen
	webExID     string
	email       string
	password    string
	siteID      string
	siteName    string
	partnerID   string
	otherSecret bool // sessionTicket or webExAccessToken
}

// authenticator checks credentials against the configured accounts. It is
// safe for concurrent use.
type authenticator struct {
	byID    map[string]*account // by lower-case webExID
	byEmail map[string]*account // by lower-case email
	dummy   *passwordHash       // verified against when no account matched, so timing says nothing
	sem     chan struct{}       // bounds slow hash checks in progress
	now     func() time.Time
	ttl     time.Duration // ≤ 0: no cache
	size    int
	macKey  [32]byte

	mu sync.Mutex
	// Guarded by mu.
	cache    map[[32]byte]time.Time   // HMAC(account, password) → expiry
	inflight map[[32]byte]*hashFlight // slow checks in progress, shared by identical requests
}

// hashFlight is one slow check that concurrent requests with the same
// credentials wait for, instead of each paying for it (a cold cache under
// load would otherwise queue hundreds of identical bcrypt runs).
type hashFlight struct {
	done chan struct{} // closed when ok and err are set
	ok   bool
	err  error
}

func newAuthenticator(cfg *Config, now func() time.Time) (*authenticator, error) {
	a := &authenticator{
		byID:     map[string]*account{},
		byEmail:  map[string]*account{},
		sem:      make(chan struct{}, cfg.Auth.MaxConcurrentHashes),
		now:      now,
		ttl:      cfg.Auth.CacheTTL,
		size:     cfg.Auth.CacheSize,
		cache:    map[[32]byte]time.Time{},
		inflight: map[[32]byte]*hashFlight{},
	}
	if _, err := rand.Read(a.macKey[:]); err != nil {
		return nil, err
	}
	for i, ac := range cfg.Accounts {
		h, err := parseHash(ac.PasswordHash)
		if err != nil {
			return nil, err
		}
		acc := &account{index: i, webExID: ac.WebExID, email: ac.Email, siteName: strings.ToLower(ac.SiteName),
			partnerID: ac.PartnerID, hash: h, tz: DefaultTimeZoneID}
		if ac.SiteID != "" {
			acc.siteID, err = strconv.ParseInt(ac.SiteID, 10, 64)
			if err != nil {
				return nil, err
			}
			acc.hasSiteID = true
		}
		if ac.TimeZoneID != nil {
			acc.tz = *ac.TimeZoneID
		}
		a.byID[strings.ToLower(ac.WebExID)] = acc
		if ac.Email != "" {
			a.byEmail[strings.ToLower(ac.Email)] = acc
		}
		if a.dummy == nil {
			a.dummy = h
		}
	}
	return a, nil
}

// authenticate returns the account c identifies, or a FAILURE: 030002 for
// anything wrong with the credentials (the reason says what is missing, but
// never whether the user exists). It implements the rule of
// webex-xml-api.md §7: (siteName or siteID) and (webExID or email) and
// password. sessionTicket and webExAccessToken are not supported: this
// front end issues neither.
func (a *authenticator) authenticate(ctx context.Context, c *credentials) (*account, *Fault) {
	switch {
	case !c.present:
		return nil, &Fault{ID: ExcAuth, Reason: "securityContext is required", Elem: "header/securityContext"}
	case c.siteID == "" && c.siteName == "":
		return nil, &Fault{ID: ExcAuth, Reason: "securityContext needs siteName or siteID", Elem: "securityContext/siteID"}
	case c.webExID == "" && c.email == "":
		return nil, &Fault{ID: ExcAuth, Reason: "securityContext needs webExID or email", Elem: "securityContext/webExID"}
	case c.password == "" && c.otherSecret:
		return nil, &Fault{ID: ExcAuth, Reason: "Only password authentication is supported", Elem: "securityContext/password"}
	case c.password == "":
		return nil, &Fault{ID: ExcAuth, Reason: "securityContext needs a password", Elem: "securityContext/password"}
	}
	acc := a.match(c)
	if acc == nil {
		// Spend the same time as a real check.
		a.slowVerify(ctx, a.dummy, c.password)
		return nil, faultAuth
	}
	ok, err := a.verify(ctx, acc, c.password)
	if err != nil {
		return nil, backendFault(err)
	}
	if !ok {
		return nil, faultAuth
	}
	return acc, nil
}

// verify checks password against acc: from the cache, else by joining an
// identical check in flight, else by a slow check that it remembers.
func (a *authenticator) verify(ctx context.Context, acc *account, password string) (bool, error) {
	if a.ttl <= 0 {
		return a.slowVerify(ctx, acc.hash, password)
	}
	k := a.mac(acc, password)
	now := a.now()
	a.mu.Lock()
	if exp, ok := a.cache[k]; ok {
		if !now.After(exp) {
			a.mu.Unlock()
			return true, nil
		}
		delete(a.cache, k)
	}
	if fl, ok := a.inflight[k]; ok {
		a.mu.Unlock()
		select {
		case <-fl.done:
			return fl.ok, fl.err
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	fl := &hashFlight{done: make(chan struct{})}
	a.inflight[k] = fl
	a.mu.Unlock()

	// The check runs under the first caller's context; if that ends
	// first, the waiters get its error and retry on their next request.
	fl.ok, fl.err = a.slowVerify(ctx, acc.hash, password)
	a.mu.Lock()
	delete(a.inflight, k)
	if fl.ok {
		a.rememberLocked(k, a.now())
	}
	a.mu.Unlock()
	close(fl.done)
	return fl.ok, fl.err
}

// match finds the account the identity and site fields name, or nil.
func (a *authenticator) match(c *credentials) *account {
	var acc *account
	if c.webExID != "" {
		acc = a.byID[strings.ToLower(c.webExID)]
		if acc == nil {
			return nil
		}
		if c.email != "" && !strings.EqualFold(c.email, acc.email) {
			return nil
		}
	} else {
		acc = a.byEmail[strings.ToLower(c.email)]
		if acc == nil {
			return nil
		}
	}
	if c.siteID != "" {
		n, err := strconv.ParseInt(c.siteID, 10, 64)
		if err != nil || !acc.hasSiteID || n != acc.siteID {
			return nil
		}
	}
	if c.siteName != "" && (acc.siteName == "" || !strings.EqualFold(c.siteName, acc.siteName)) {
		return nil
	}
	if c.partnerID != "" && acc.partnerID != "" && c.partnerID != acc.partnerID {
		return nil
	}
	return acc
}

// slowVerify runs a hash check under the concurrency bound.
func (a *authenticator) slowVerify(ctx context.Context, h *passwordHash, password string) (bool, error) {
	select {
	case a.sem <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-a.sem }()
	return h.verify([]byte(password)), nil
}

func (a *authenticator) mac(acc *account, password string) [32]byte {
	m := hmac.New(sha256.New, a.macKey[:])
	var idx [8]byte
	binary.BigEndian.PutUint64(idx[:], uint64(acc.index))
	m.Write(idx[:])
	m.Write([]byte(password))
	var out [32]byte
	m.Sum(out[:0])
	return out
}

// rememberLocked caches a verified pair. a.mu must be held.
func (a *authenticator) rememberLocked(k [32]byte, now time.Time) {
	if len(a.cache) >= a.size {
		for ck, exp := range a.cache {
			if now.After(exp) {
				delete(a.cache, ck)
			}
		}
		// Still full: drop arbitrary entries (map order is random); they
		// only cost one more slow check.
		for ck := range a.cache {
			if len(a.cache) < a.size {
				break
			}
			delete(a.cache, ck)
		}
	}
	a.cache[k] = now.Add(a.ttl)
}
