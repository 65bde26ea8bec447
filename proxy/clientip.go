package proxy

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// peerAddr is the address of the TCP peer, without port.
func peerAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	return host
}

// ClientIP returns the client's address: the TCP peer, or, when the peer is
// a trusted proxy, the first address in X-Forwarded-For (read from the
// right) that is not itself a trusted proxy. A client outside
// trusted_proxies gains nothing by sending these headers. The second result
// says whether the peer is trusted.
func ClientIP(r *http.Request, trusted []netip.Prefix) (netip.Addr, bool) {
	return clientIP(r, trusted)
}

func clientIP(r *http.Request, trusted []netip.Prefix) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	peer := ap.Addr().Unmap()
	if !inPrefixes(peer, trusted) {
		return peer, false
	}
	hops := r.Header.Values("X-Forwarded-For")
	if len(hops) == 0 {
		if fwd := r.Header.Values("Forwarded"); len(fwd) > 0 {
			return fromForwarded(fwd, peer, trusted), true
		}
		return peer, true
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		list := hops[i]
		for list != "" {
			var hop string
			if j := strings.LastIndexByte(list, ','); j >= 0 {
				hop, list = list[j+1:], list[:j]
			} else {
				hop, list = list, ""
			}
			addr, ok := parseHop(strings.TrimSpace(hop))
			if !ok {
				// Garbage from beyond the last proxy we trust: believe
				// nothing further left.
				return client, true
			}
			client = addr
			if !inPrefixes(addr, trusted) {
				return client, true
			}
		}
	}
	return client, true
}

// fromForwarded reads the for= parameters of RFC 7239 Forwarded headers,
// right to left, like X-Forwarded-For.
func fromForwarded(values []string, peer netip.Addr, trusted []netip.Prefix) netip.Addr {
	client := peer
	for i := len(values) - 1; i >= 0; i-- {
		elems := strings.Split(values[i], ",")
		for j := len(elems) - 1; j >= 0; j-- {
			var forAddr string
			for _, pair := range strings.Split(elems[j], ";") {
				k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if ok && strings.EqualFold(k, "for") {
					forAddr = strings.Trim(v, `"`)
				}
			}
			addr, ok := parseHop(forAddr)
			if !ok {
				return client
			}
			client = addr
			if !inPrefixes(addr, trusted) {
				return client
			}
		}
	}
	return client
}

// parseHop parses one hop: an IP, an IP:port, or a bracketed IPv6 with or
// without a port.
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}

func inPrefixes(a netip.Addr, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
