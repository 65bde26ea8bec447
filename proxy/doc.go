// Package proxy is the gateway's front door: it routes each request by Host,
// canonicalizes its path once, asks the policy whether the caller may pass,
// and forwards allowed requests to the app with the caller's identity in
// headers. The upstream receives exactly the canonical path the policy saw,
// and never a client-supplied identity header.
package proxy
