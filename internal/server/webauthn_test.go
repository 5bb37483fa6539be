package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/attest/attest/internal/identity"
	"github.com/attest/attest/internal/server"
	"github.com/attest/attest/internal/store"
	"github.com/attest/attest/internal/store/storetest"
	"github.com/fxamacker/cbor/v2"
)

var b64url = base64.RawURLEncoding

// testAAGUID names the virtual authenticator's model.
var testAAGUID = []byte{0x0e, 0xa2, 0x42, 0xb4, 0x43, 0xc4, 0x48, 0x78, 0xb1, 0xd5, 0x0b, 0xa0, 0x9b, 0x0c, 0x2c, 0x5a}

// authenticator is a virtual WebAuthn authenticator with one ES256 key: it
// builds what a browser would hand over, "none" attestation included.
type authenticator struct {
	t      *testing.T
	key    *ecdsa.PrivateKey
	id     []byte
	rpID   string
	origin string
	count  uint32
	user   []byte // the user handle it was registered under
}

func newAuthenticator(t *testing.T, rpID, origin string) *authenticator {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 32)
	rand.Read(id)
	return &authenticator{t: t, key: key, id: id, rpID: rpID, origin: origin}
}

// authData is the authenticator data: RP ID hash, flags, counter and the
// attested credential data, when there is some.
func (a *authenticator) authData(flags byte, attested []byte) []byte {
	h := sha256.Sum256([]byte(a.rpID))
	b := append(h[:], flags)
	b = binary.BigEndian.AppendUint32(b, a.count)
	return append(b, attested...)
}

func (a *authenticator) clientData(typ, challenge, origin string) []byte {
	b, err := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": origin, "crossOrigin": false})
	if err != nil {
		a.t.Fatal(err)
	}
	return b
}

// creationOptions is what the server's options say, of what the
// authenticator needs.
type creationOptions struct {
	PublicKey struct {
		Challenge string
		RP        struct{ ID string }
		User      struct{ ID string }
	}
}

// create answers navigator.credentials.create from origin.
func (a *authenticator) create(opts creationOptions, origin string) string {
	a.t.Helper()
	user, err := b64url.DecodeString(opts.PublicKey.User.ID)
	if err != nil || opts.PublicKey.RP.ID != a.rpID {
		a.t.Fatalf("creation options: user %q, rp %q", opts.PublicKey.User.ID, opts.PublicKey.RP.ID)
	}
	a.user = user
	x, y := make([]byte, 32), make([]byte, 32)
	a.key.X.FillBytes(x)
	a.key.Y.FillBytes(y)
	cose, err := cbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: x, -3: y})
	if err != nil {
		a.t.Fatal(err)
	}
	attested := append(slices.Clone(testAAGUID), byte(len(a.id)>>8), byte(len(a.id)))
	attested = append(append(attested, a.id...), cose...)
	obj, err := cbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{},
		"authData": a.authData(0x45, attested)}) // user present, verified, attested data
	if err != nil {
		a.t.Fatal(err)
	}
	cd := a.clientData("webauthn.create", opts.PublicKey.Challenge, origin)
	return a.credentialJSON(map[string]any{"clientDataJSON": b64url.EncodeToString(cd),
		"attestationObject": b64url.EncodeToString(obj), "transports": []string{"internal"}})
}

// get answers navigator.credentials.get from origin, counting one more use.
func (a *authenticator) get(challenge, origin string) string {
	a.t.Helper()
	a.count++
	cd := a.clientData("webauthn.get", challenge, origin)
	ad := a.authData(0x05, nil) // user present, verified
	cdh := sha256.Sum256(cd)
	digest := sha256.Sum256(append(slices.Clone(ad), cdh[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, digest[:])
	if err != nil {
		a.t.Fatal(err)
	}
	return a.credentialJSON(map[string]any{"clientDataJSON": b64url.EncodeToString(cd),
		"authenticatorData": b64url.EncodeToString(ad), "signature": b64url.EncodeToString(sig),
		"userHandle": b64url.EncodeToString(a.user)})
}

func (a *authenticator) credentialJSON(response map[string]any) string {
	b, err := json.Marshal(map[string]any{"id": b64url.EncodeToString(a.id), "rawId": b64url.EncodeToString(a.id),
		"type": "public-key", "response": response, "clientExtensionResults": map[string]any{},
		"authenticatorAttachment": "platform"})
	if err != nil {
		a.t.Fatal(err)
	}
	return string(b)
}

// assertionOptions is the part of the login options the test reads.
type assertionOptions struct {
	PublicKey struct {
		Challenge        string
		RPID             string `json:"rpId"`
		UserVerification string `json:"userVerification"`
		AllowCredentials []struct {
			ID   string
			Type string
		} `json:"allowCredentials"`
	}
}

// passwordStep signs a person in with their password and answers the
// pending login's token and factors.
func (ts *testServer) passwordStep(p *person) (string, []string) {
	ts.t.Helper()
	var step struct {
		LoginToken string `json:"login_token"`
		Factors    []string
	}
	ts.do("POST", "/api/v1/auth/login", "", nil, fmt.Sprintf(`{"tenant":"default","email":%q,"password":%q}`, p.email,
		p.password), http.StatusOK, &step)
	return step.LoginToken, step.Factors
}

func (ts *testServer) passkeyChallenge(loginToken string) assertionOptions {
	ts.t.Helper()
	var opts assertionOptions
	ts.do("POST", "/api/v1/auth/login/webauthn/begin", "", nil, fmt.Sprintf(`{"login_token":%q}`, loginToken),
		http.StatusOK, &opts)
	return opts
}

func (ts *testServer) passkeyLogin(loginToken, assertion string, want int) string {
	ts.t.Helper()
	var done struct {
		Session struct{ Token, Factor string }
	}
	ts.do("POST", "/api/v1/auth/login/webauthn", "", nil, fmt.Sprintf(`{"login_token":%q,"credential":%s}`, loginToken,
		assertion), want, &done)
	if want == http.StatusOK && done.Session.Factor != "webauthn" {
		ts.t.Fatalf("session factor %q, want webauthn", done.Session.Factor)
	}
	return done.Session.Token
}

func TestWebAuthn(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *store.DB, opts storetest.Options) {
		c := newClock(time.Now())
		ts := startClocked(t, opts, c, server.Config{})
		u, err := url.Parse(ts.url)
		if err != nil {
			t.Fatal(err)
		}
		origin := "https://localhost:" + u.Port()
		if err := ts.in.Identity.Passkeys.Configure(identity.PasskeyConfig{RPID: "localhost",
			Origins: []string{origin}}); err != nil {
			t.Fatal(err)
		}
		p := ts.enrol(c, "default", "ana@example.com", "")
		other := ts.login(c, "default", p)
		auth := newAuthenticator(t, "localhost", origin)

		// Registration needs a fresh TOTP code; a response from another
		// origin does not verify, and spends the registration.
		ts.do("POST", "/api/v1/me/webauthn/begin", p.session, nil, `{"code":"000000"}`, http.StatusForbidden, nil)
		var cOpts creationOptions
		c.Add(30 * time.Second)
		ts.do("POST", "/api/v1/me/webauthn/begin", p.session, nil, fmt.Sprintf(`{"code":%q}`, code(t, p.secret, c.Now())),
			http.StatusOK, &cOpts)
		bad := auth.create(cOpts, "https://evil.example")
		ts.do("POST", "/api/v1/me/webauthn", p.session, nil, `{"name":"laptop","credential":`+bad+`}`,
			http.StatusBadRequest, nil)
		ts.do("POST", "/api/v1/me/webauthn", p.session, nil, `{"name":"laptop","credential":`+auth.create(cOpts, origin)+`}`,
			http.StatusConflict, nil)

		c.Add(30 * time.Second)
		ts.do("POST", "/api/v1/me/webauthn/begin", p.session, nil, fmt.Sprintf(`{"code":%q}`, code(t, p.secret, c.Now())),
			http.StatusOK, &cOpts)
		var added struct {
			Token   string
			Passkey struct{ ID, Name, AAGUID string }
		}
		ts.do("POST", "/api/v1/me/webauthn", p.session, nil, `{"name":"laptop","credential":`+auth.create(cOpts, origin)+`}`,
			http.StatusOK, &added)
		if added.Passkey.ID != b64url.EncodeToString(auth.id) || added.Passkey.Name != "laptop" {
			t.Fatalf("added %+v", added.Passkey)
		}
		// A factor change ends the other sessions and rotates this one.
		ts.do("GET", "/api/v1/me", other, nil, "", http.StatusUnauthorized, nil)
		ts.do("GET", "/api/v1/me", p.session, nil, "", http.StatusUnauthorized, nil)
		p.session = added.Token
		var list struct {
			Passkeys []map[string]any
		}
		ts.do("GET", "/api/v1/me/webauthn", p.session, nil, "", http.StatusOK, &list)
		if len(list.Passkeys) != 1 || list.Passkeys[0]["aaguid"] != "0ea242b4-43c4-4878-b1d5-0ba09b0c2c5a" ||
			list.Passkeys[0]["clone_warning"] != false {
			t.Fatalf("passkeys: %v", list.Passkeys)
		}
		for k := range list.Passkeys[0] {
			if k != "id" && k != "name" && k != "aaguid" && k != "clone_warning" && k != "created_at" && k != "last_used_at" {
				t.Errorf("the passkey list shows %q", k)
			}
		}

		// Password, then the passkey.
		tok, factors := ts.passwordStep(p)
		if !slices.Contains(factors, "webauthn") {
			t.Fatalf("factors %v lack webauthn", factors)
		}
		aOpts := ts.passkeyChallenge(tok)
		pk := aOpts.PublicKey
		if pk.RPID != "localhost" || pk.UserVerification != "preferred" || len(pk.AllowCredentials) != 1 ||
			pk.AllowCredentials[0].ID != added.Passkey.ID || pk.Challenge == "" {
			t.Fatalf("assertion options %+v", pk)
		}
		first := auth.get(pk.Challenge, origin)
		sess := ts.passkeyLogin(tok, first, http.StatusOK)
		ts.do("GET", "/api/v1/me", sess, nil, "", http.StatusOK, nil)

		// A replayed assertion fails: its login is spent, and another
		// login's challenge is not the one it signed.
		ts.passkeyLogin(tok, first, http.StatusUnauthorized)
		tok, _ = ts.passwordStep(p)
		aOpts = ts.passkeyChallenge(tok)
		ts.passkeyLogin(tok, first, http.StatusUnauthorized)
		// A challenge is spent by any attempt: a right answer over it
		// after a wrong one fails too.
		ts.passkeyLogin(tok, auth.get(aOpts.PublicKey.Challenge, origin), http.StatusUnauthorized)
		ts.passkeyLogin(tok, auth.get(ts.passkeyChallenge(tok).PublicKey.Challenge, origin), http.StatusOK)

		// Another origin is refused.
		tok, _ = ts.passwordStep(p)
		aOpts = ts.passkeyChallenge(tok)
		ts.passkeyLogin(tok, auth.get(aOpts.PublicKey.Challenge, "https://evil.example"), http.StatusUnauthorized)
		ts.passkeyLogin(tok, auth.get(ts.passkeyChallenge(tok).PublicKey.Challenge, origin), http.StatusOK)

		// A counter that goes backwards is refused, flags the credential,
		// and is a security event in the tenant's trail.
		tok, _ = ts.passwordStep(p)
		aOpts = ts.passkeyChallenge(tok)
		auth.count -= 2
		ts.passkeyLogin(tok, auth.get(aOpts.PublicKey.Challenge, origin), http.StatusUnauthorized)
		var trail struct {
			Items []struct{ Event json.RawMessage }
		}
		ts.do("GET", "/api/v1/compliance/audit-trail?action=security.webauthn.counter_regression", ts.operator,
			map[string]string{"Attest-Tenant": "default"}, "", http.StatusOK, &trail)
		if len(trail.Items) != 1 {
			t.Fatalf("%d counter regression events, want 1", len(trail.Items))
		}
		var ev struct {
			Category string
			Actor    struct{ ID string }
			Details  map[string]any
		}
		if err := json.Unmarshal(trail.Items[0].Event, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Category != "security" || ev.Actor.ID != p.id || ev.Details["severity"] != "high" ||
			ev.Details["credential_id"] != added.Passkey.ID {
			t.Errorf("counter regression event: %s", trail.Items[0].Event)
		}
		// The flagged credential no longer signs in, even with a good
		// counter.
		ts.do("POST", "/api/v1/auth/login/webauthn/begin", "", nil, fmt.Sprintf(`{"login_token":%q}`, tok),
			http.StatusBadRequest, nil)
		s1 := ts.login(c, "default", p)
		ts.do("GET", "/api/v1/me/webauthn", s1, nil, "", http.StatusOK, &list)
		if len(list.Passkeys) != 1 || list.Passkeys[0]["clone_warning"] != true {
			t.Fatalf("after the regression: %v", list.Passkeys)
		}

		// Removing a factor ends every session of the user's.
		s2 := ts.login(c, "default", p)
		ts.do("DELETE", "/api/v1/me/webauthn/"+b64url.EncodeToString([]byte("nope")), s1, nil, "", http.StatusNotFound, nil)
		ts.do("DELETE", "/api/v1/me/webauthn/"+added.Passkey.ID, s1, nil, "", http.StatusOK, nil)
		ts.do("GET", "/api/v1/me", s1, nil, "", http.StatusUnauthorized, nil)
		ts.do("GET", "/api/v1/me", s2, nil, "", http.StatusUnauthorized, nil)
		if _, factors := ts.passwordStep(p); slices.Contains(factors, "webauthn") {
			t.Errorf("factors %v after removal", factors)
		}
	})
}
