// Package v1alpha1 is the DatabaseBackup API (group database.sample.third.party):
// the types a platform engineer writes, the conditions and reasons the
// operator and the backup job report, and the names both sides of the
// controller–job contract share (environment variables, mount paths).
//
// It holds types and constants only. It must not import a storage SDK, a
// database driver or the controller: the job binary and the controller both
// import it, and it is what a client of the API vendors.
//
// +kubebuilder:object:generate=true
// +groupName=database.sample.third.party
package v1alpha1
