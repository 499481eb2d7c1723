// Package atomicfile replaces small files so that a crash leaves either the
// old or the new content, never a mix: write a temporary file next to the
// target, fsync it, rename it over the target, fsync the directory. The last
// step is the one easily forgotten: a rename is an update of the directory,
// and until the directory is fsynced a crash may undo it (or, for a file
// just created, lose it).
//
// keygen's lease state and secret and the daemon's orphan journal rewrite
// files this way. Every file operation goes through FS, so that tests inject
// disk faults (ENOSPC, EIO, EROFS) at any step; OS is the real one.
package atomicfile
