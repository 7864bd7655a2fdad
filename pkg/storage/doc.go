// Package storage is Skiff's cluster store: Kubernetes objects kept in etcd v3
// under keys such as /registry/pods/default/nginx, with upstream kube-apiserver
// semantics.
//
//   - An object's resourceVersion is the etcd mod_revision of its key. Values
//     written to etcd never carry a resourceVersion; it is filled in on read.
//   - Writes are optimistic: Update and Delete are compare-and-swap loops on
//     mod_revision, so concurrent writers never lose each other's changes.
//   - Each resource type (one key prefix such as /registry/pods/) gets a watch
//     cache, started on its first List or Watch: exactly one etcd watch, the
//     current objects in memory and a ring buffer of recent events. Watches are
//     fanned out from memory, and lists at resourceVersion "0" (or not older
//     than a revision the cache has reached) are answered from memory.
//   - Consistent lists (resourceVersion ""), exact lists and paged lists read
//     etcd directly at one revision, so limit/continue pages are a snapshot.
//
// Objects handed to callers are always the caller's own copies: they may be
// mutated freely.
package storage
