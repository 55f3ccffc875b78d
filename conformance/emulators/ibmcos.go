package emulators

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbarchive/dbarchive/drivers"
)

// IBM COS auth modes the emulator enforces.
const (
	IBMCOSHMAC   = "hmac"
	IBMCOSAPIKey = "apikey"
)

// Fake credentials of the ibmcos emulator.
const (
	fakeAPIKey     = "emulator-api-key-not-a-real-one"
	fakeInstanceID = "crn:v1:bluemix:public:cloud-object-storage:global:a/emulator:emulator::"
)

// IAMStats counts what the emulated IAM token endpoint and the bearer check in
// front of gofakes3 saw, so a test can assert the token exchange happened.
type IAMStats struct {
	tokenRequests atomic.Int64
	tokensIssued  atomic.Int64
	authorized    atomic.Int64
	denied        atomic.Int64

	mu     sync.Mutex
	tokens map[string]bool // access tokens issued and not expired
	reason string          // why the last request was denied
}

// TokenRequests is the number of POSTs to the token endpoint.
func (s *IAMStats) TokenRequests() int64 { return s.tokenRequests.Load() }

// TokensIssued is the number of tokens the endpoint granted.
func (s *IAMStats) TokensIssued() int64 { return s.tokensIssued.Load() }

// Authorized is the number of storage requests whose credentials passed.
func (s *IAMStats) Authorized() int64 { return s.authorized.Load() }

// Denied is the number of storage requests refused with 403.
func (s *IAMStats) Denied() int64 { return s.denied.Load() }

// LastDenial says why the last storage request was refused, for messages.
func (s *IAMStats) LastDenial() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reason
}

// IBMCOS starts gofakes3 behind the checks IBM COS makes, and returns the
// config of an ibmcos repo on it. In mode "hmac" every request must be signed
// with AWS Signature V4 by the config's HMAC access key id; in mode "apikey" an
// in-process IAM token endpoint exchanges the config's API key for a token, and
// every request must carry "Authorization: Bearer <that token>" and the
// service instance id. Anything else is answered 403 AccessDenied. Callers set
// ListPageSize.
func IBMCOS(t testing.TB, mode string) (drivers.Config, *IAMStats) {
	t.Helper()
	stats := &IAMStats{tokens: map[string]bool{}}
	var secrets map[string]string
	var check func(*http.Request) string
	authEndpoint := ""
	switch mode {
	case IBMCOSHMAC:
		secrets = map[string]string{"HmacAccessKeyId": fakeAccessKeyID, "HmacSecretAccessKey": fakeSecretAccessKey}
		check = func(r *http.Request) string {
			want := "AWS4-HMAC-SHA256 Credential=" + fakeAccessKeyID + "/"
			if !strings.HasPrefix(r.Header.Get("Authorization"), want) {
				return "Authorization is not an AWS4-HMAC-SHA256 signature by the expected access key id"
			}
			return ""
		}
	case IBMCOSAPIKey:
		secrets = map[string]string{"ApiKey": fakeAPIKey, "ServiceInstanceId": fakeInstanceID}
		iam := httptest.NewServer(http.HandlerFunc(stats.serveToken))
		t.Cleanup(iam.Close)
		authEndpoint = iam.URL + "/identity/token"
		check = func(r *http.Request) string {
			tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok {
				return "Authorization is not a Bearer token"
			}
			stats.mu.Lock()
			valid := stats.tokens[tok]
			stats.mu.Unlock()
			if !valid {
				return "bearer token was not issued by the IAM endpoint"
			}
			if r.Header.Get("ibm-service-instance-id") != fakeInstanceID {
				return "ibm-service-instance-id header missing or wrong"
			}
			return ""
		}
	default:
		t.Fatalf("emulators.IBMCOS: unknown mode %q (want %q or %q)", mode, IBMCOSHMAC, IBMCOSAPIKey)
	}
	url, bucket := startS3(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if reason := check(r); reason != "" {
				stats.denied.Add(1)
				stats.mu.Lock()
				stats.reason = reason
				stats.mu.Unlock()
				denyS3(w, r, reason)
				return
			}
			stats.authorized.Add(1)
			next.ServeHTTP(w, r)
		})
	})
	return drivers.Config{
		Name:         "ibmcos-emulator-" + mode,
		Type:         "ibmcos",
		Endpoint:     url,
		AuthEndpoint: authEndpoint,
		PathStyle:    true,
		Region:       "us-standard",
		Bucket:       bucket,
		Secrets:      drivers.SecretsFromStrings(secrets),
	}, stats
}

// serveToken speaks as much of IBM Cloud IAM's token API as the SDK's token
// manager uses: form POSTs with grant_type apikey or refresh_token, client
// "bx:bx" basic auth, and a JSON token or a JSON error in answer.
func (s *IAMStats) serveToken(w http.ResponseWriter, r *http.Request) {
	s.tokenRequests.Add(1)
	fail := func(status int, code, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"errorCode": code, "errorMessage": msg, "context": map[string]string{}})
	}
	if r.Method != http.MethodPost || r.URL.Path != "/identity/token" {
		fail(http.StatusNotFound, "BXNIM0000E", "not found")
		return
	}
	if r.Header.Get("Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte("bx:bx")) {
		fail(http.StatusUnauthorized, "BXNIM0308E", "client authorization missing")
		return
	}
	if err := r.ParseForm(); err != nil {
		fail(http.StatusBadRequest, "BXNIM0109E", "malformed form")
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "urn:ibm:params:oauth:grant-type:apikey":
		if r.PostForm.Get("apikey") != fakeAPIKey {
			fail(http.StatusBadRequest, "BXNIM0415E", "Provided API key could not be found")
			return
		}
	case "refresh_token":
		s.mu.Lock()
		known := s.tokens["refresh:"+r.PostForm.Get("refresh_token")]
		s.mu.Unlock()
		if !known {
			fail(http.StatusBadRequest, "BXNIM0407E", "refresh token invalid")
			return
		}
	default:
		fail(http.StatusBadRequest, "BXNIM0103E", "unsupported grant_type")
		return
	}
	access, refresh := randomToken(), randomToken()
	s.mu.Lock()
	s.tokens[access] = true
	s.tokens["refresh:"+refresh] = true
	s.mu.Unlock()
	s.tokensIssued.Add(1)
	const ttl = 3600
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token":  access,
		"refresh_token": refresh,
		"token_type":    "Bearer",
		"expires_in":    ttl,
		"expiration":    time.Now().Unix() + ttl,
	})
}

func randomToken() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
