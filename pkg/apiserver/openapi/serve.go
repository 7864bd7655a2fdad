package openapi

import (
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	openapiv2 "github.com/google/gnostic-models/openapiv2"
	openapiv3 "github.com/google/gnostic-models/openapiv3"
	"github.com/munnerz/goautoneg"
	"google.golang.org/protobuf/proto"
)

// Media types served, as upstream's handlers name them. The "@" forms are
// the deprecated spellings clients (client-go's discovery) still send.
const (
	mediaJSON            = "application/json"
	mediaV2Protobuf      = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
	mediaV2ProtobufOld   = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
	mediaV3Protobuf      = "application/com.github.proto-openapi.spec.v3.v1.0+protobuf"
	mediaV3ProtobufOld   = "application/com.github.proto-openapi.spec.v3@v1.0+protobuf"
	immutableCacheHeader = "public, immutable"
)

// compressed is one cached representation: gzip bytes plus their ETag.
type compressed struct {
	gz   []byte
	etag string // hex SHA-512 of the uncompressed bytes, unquoted
}

// lazyDoc is a document built on first use and cached gzip-compressed.
// A build error is cached too: documents derive from compiled-in types and
// the CRD set, so retrying cannot succeed until SetCustomResources replaces
// the document.
type lazyDoc struct {
	build func() ([]byte, error)
	proto func(json []byte) ([]byte, error) // nil: no protobuf form

	once sync.Once
	json compressed
	err  error

	protoOnce sync.Once
	pb        compressed
	protoErr  error
}

func (d *lazyDoc) get() (compressed, error) {
	d.once.Do(func() {
		raw, err := d.build()
		if err != nil {
			d.err = err
			return
		}
		d.json, d.err = compress(raw)
	})
	return d.json, d.err
}

func (d *lazyDoc) getProto() (compressed, error) {
	d.protoOnce.Do(func() {
		c, err := d.get()
		if err != nil {
			d.protoErr = err
			return
		}
		raw, err := gunzip(c.gz)
		if err != nil {
			d.protoErr = err
			return
		}
		pb, err := d.proto(raw)
		if err != nil {
			d.protoErr = err
			return
		}
		d.pb, d.protoErr = compress(pb)
	})
	return d.pb, d.protoErr
}

func compress(raw []byte) (compressed, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		return compressed{}, fmt.Errorf("compressing OpenAPI document: %w", err)
	}
	if _, err := zw.Write(raw); err != nil {
		return compressed{}, fmt.Errorf("compressing OpenAPI document: %w", err)
	}
	if err := zw.Close(); err != nil {
		return compressed{}, fmt.Errorf("compressing OpenAPI document: %w", err)
	}
	// Upstream's ETag (and v3 hash) format: upper-case hex SHA-512.
	return compressed{gz: bytes.Clone(buf.Bytes()), etag: fmt.Sprintf("%X", sha512.Sum512(raw))}, nil
}

func gunzip(gz []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("decompressing OpenAPI document: %w", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("decompressing OpenAPI document: %w", err)
	}
	return raw, nil
}

// v2ProtoFromJSON converts a Swagger 2.0 JSON document to gnostic protobuf,
// as upstream's handler does.
func v2ProtoFromJSON(raw []byte) ([]byte, error) {
	doc, err := openapiv2.ParseDocument(raw)
	if err != nil {
		return nil, fmt.Errorf("parsing OpenAPI v2 document: %w", err)
	}
	out, err := proto.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encoding OpenAPI v2 protobuf: %w", err)
	}
	return out, nil
}

// v3ProtoFromJSON converts an OpenAPI 3.0 JSON document to gnostic protobuf.
func v3ProtoFromJSON(raw []byte) ([]byte, error) {
	doc, err := openapiv3.ParseDocument(raw)
	if err != nil {
		return nil, fmt.Errorf("parsing OpenAPI v3 document: %w", err)
	}
	out, err := proto.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encoding OpenAPI v3 protobuf: %w", err)
	}
	return out, nil
}

// ServeHTTP handles GET and HEAD of /openapi/v2, /openapi/v3 and
// /openapi/v3/<api/v1|apis/group/version>; anything else under /openapi is
// 404 (405 for other methods). Responses carry an ETag and honour
// If-None-Match; v3 group/version documents requested with the current
// ?hash= are marked immutable, a stale hash redirects to the current URL
// (both as upstream). Bodies are sent gzip-compressed when the client
// accepts it (so callers must not compress them again) and decompressed
// on the fly otherwise.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s.mu.RLock()
	st := s.state
	s.mu.RUnlock()

	path := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case path == "/openapi/v2":
		serveDoc(w, r, st.v2, []mediaOffer{
			{mediaJSON, mediaJSON, false},
			{mediaV2ProtobufOld, mediaV2Protobuf, true},
			{mediaV2Protobuf, mediaV2Protobuf, true},
		}, false)
	case path == "/openapi/v3":
		serveDoc(w, r, st.index, []mediaOffer{{mediaJSON, mediaJSON, false}}, false)
	case strings.HasPrefix(path, "/openapi/v3/"):
		key := strings.TrimPrefix(path, "/openapi/v3/")
		d := st.v3[key]
		if d == nil {
			http.NotFound(w, r)
			return
		}
		serveDoc(w, r, d, []mediaOffer{
			{mediaJSON, mediaJSON, false},
			{mediaV3Protobuf, mediaV3Protobuf, true},
			{mediaV3ProtobufOld, mediaV3Protobuf, true},
		}, true)
	default:
		http.NotFound(w, r)
	}
}

// mediaOffer is one representation a document can be served in.
type mediaOffer struct {
	accept      string // media type matched against Accept
	contentType string // Content-Type returned
	proto       bool
}

// serveDoc negotiates the representation, then writes it. hashed enables
// the v3 ?hash= handling.
func serveDoc(w http.ResponseWriter, r *http.Request, d *lazyDoc, offers []mediaOffer, hashed bool) {
	w.Header().Add("Vary", "Accept")
	offer, ok := negotiate(r.Header.Get("Accept"), offers)
	if !ok {
		http.Error(w, "none of the requested media types is supported", http.StatusNotAcceptable)
		return
	}
	// The hash check uses the JSON form's hash whatever the representation:
	// it is the one the index publishes.
	c, err := d.get()
	if err != nil {
		http.Error(w, "building OpenAPI document: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if hashed {
		if hash := r.URL.Query().Get("hash"); hash != "" {
			if hash != c.etag {
				u := *r.URL
				q := u.Query()
				q.Set("hash", c.etag)
				u.RawQuery = q.Encode()
				http.Redirect(w, r, u.String(), http.StatusMovedPermanently)
				return
			}
			w.Header().Set("Cache-Control", immutableCacheHeader)
			w.Header().Set("Expires", time.Now().AddDate(1, 0, 0).UTC().Format(http.TimeFormat))
		}
	}
	etag := c.etag
	if offer.proto {
		if c, err = d.getProto(); err != nil {
			http.Error(w, "building OpenAPI protobuf: "+err.Error(), http.StatusInternalServerError)
			return
		}
		// The protobuf form is a function of the JSON one, so it shares
		// its hash; the suffix keeps validators distinct per
		// representation, since one URL serves both under Vary: Accept.
		etag += "-pb"
	}
	quoted := strconv.Quote(etag)
	h := w.Header()
	h.Set("Content-Type", offer.contentType)
	h.Set("ETag", quoted)
	h.Add("Vary", "Accept-Encoding")
	if etagMatches(r.Header.Get("If-None-Match"), quoted) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		h.Set("Content-Encoding", "gzip")
		h.Set("Content-Length", strconv.Itoa(len(c.gz)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(c.gz) // the client went away; nothing to do
		}
		return
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	zr, err := gzip.NewReader(bytes.NewReader(c.gz))
	if err != nil {
		return // cannot happen for bytes compress produced; headers are sent
	}
	_, _ = io.Copy(w, zr)
}

// negotiate picks the first offer the Accept header admits, in the
// header's preference order; an empty header accepts anything.
func negotiate(accept string, offers []mediaOffer) (mediaOffer, bool) {
	if accept == "" {
		accept = "*/*"
	}
	for _, clause := range goautoneg.ParseAccept(accept) {
		if clause.Q <= 0 {
			continue
		}
		for _, o := range offers {
			typ, sub, _ := strings.Cut(o.accept, "/")
			if (clause.Type == typ || clause.Type == "*") && (clause.SubType == sub || clause.SubType == "*") {
				return o, true
			}
		}
	}
	return mediaOffer{}, false
}

// etagMatches implements If-None-Match for a strong ETag.
func etagMatches(header, quoted string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == quoted {
			return true
		}
	}
	return false
}

// acceptsGzip reports whether Accept-Encoding admits gzip.
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		params = strings.ReplaceAll(params, " ", "")
		return params != "q=0" && params != "q=0.0" && params != "q=0.00" && params != "q=0.000"
	}
	return false
}
