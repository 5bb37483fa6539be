package controls

// manualControls are proved by evidence a person supplies.
var manualControls = []*Control{}
