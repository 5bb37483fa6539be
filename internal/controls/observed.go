package controls

// observedControls read the state of the service, its keys, backups,
// alerts and personal data.
var observedControls = []*Control{}
