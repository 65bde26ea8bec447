package loginui

import "github.com/gorilla/securecookie"

func encodeForTest(u *UI, id string) (string, error) {
	return securecookie.EncodeMulti(u.cookie, []byte(id), u.codecs[0])
}
