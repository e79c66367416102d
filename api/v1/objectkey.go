package v1

// Key is an object's identity: its kind, namespace ("" for cluster-scoped kinds) and name.
// It is comparable, so it keys maps of objects; its String form is [ObjectKey]'s.
type Key struct{ Kind, Namespace, Name string }

// String formats the key as Kind "name" or Kind "namespace/name".
func (k Key) String() string { return ObjectKey(k.Kind, k.Namespace, k.Name) }

// KeyOf returns o's key.
func KeyOf(o Object) Key {
	m := o.GetObjectMeta()
	return Key{o.GetTypeMeta().Kind, m.Namespace, m.Name}
}
