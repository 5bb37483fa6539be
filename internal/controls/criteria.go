// Package controls is attest's SOC 2 controls engine: the Trust Services
// Criteria, the controls that support them, the tests that check the real
// state of the system, and their results.
package controls

// Category is a Trust Services category. A SOC 2 report always covers
// Security; the other four are chosen per report.
type Category string

// The five Trust Services categories.
const (
	Security            Category = "security"             // the common criteria, CC
	Availability        Category = "availability"         // A
	Confidentiality     Category = "confidentiality"      // C
	ProcessingIntegrity Category = "processing_integrity" // PI
	Privacy             Category = "privacy"              // P
)

// Categories lists the categories in order, Security first.
var Categories = []Category{
	Security, Availability, Confidentiality, ProcessingIntegrity, Privacy,
}

// Criterion is one Trust Services criterion.
type Criterion struct {
	ID       string   `json:"id"` // exact id, such as "CC6.1", "A1.2", "PI1.5" or "P4.3"
	Category Category `json:"category"`
	Series   string   `json:"series"`  // the series the criterion belongs to, id first
	Summary  string   `json:"summary"` // what the criterion asks, in a sentence or two
}

// Series titles. The ids match the AICPA's; the titles are ours.
const (
	seriesCC1 = "CC1 Control environment"
	seriesCC2 = "CC2 Information and communication"
	seriesCC3 = "CC3 Risk assessment"
	seriesCC4 = "CC4 Monitoring of controls"
	seriesCC5 = "CC5 Control activities"
	seriesCC6 = "CC6 Logical and physical access controls"
	seriesCC7 = "CC7 System operations"
	seriesCC8 = "CC8 Change management"
	seriesCC9 = "CC9 Risk mitigation"
	seriesA1  = "A1 Availability"
	seriesC1  = "C1 Confidentiality"
	seriesPI1 = "PI1 Processing integrity"
	seriesP1  = "P1 Notice of privacy practices"
	seriesP2  = "P2 Choice and consent"
	seriesP3  = "P3 Collection"
	seriesP4  = "P4 Use, retention and disposal"
	seriesP5  = "P5 Access by data subjects"
	seriesP6  = "P6 Disclosure and notification"
	seriesP7  = "P7 Quality of personal information"
	seriesP8  = "P8 Monitoring and enforcement"
)

// Criteria lists every criterion of the 2017 Trust Services Criteria in
// order: CC1.1 to CC9.2, then A1, C1, PI1 and P1.1 to P8.1. The summaries
// are paraphrases, read with the 2022 revised points of focus in mind; they
// say what an auditor will look for, not the criterion's official wording.
var Criteria = []Criterion{
	// Common criteria (Security).
	{"CC1.1", Security, seriesCC1,
		"Leadership shows in words and conduct that integrity and ethics matter: a code " +
			"of conduct exists, staff acknowledge it, and departures from it are found and " +
			"dealt with promptly."},
	{"CC1.2", Security, seriesCC1,
		"The board, or an equivalent oversight body, is independent of management and " +
			"actually oversees how internal control is designed and run."},
	{"CC1.3", Security, seriesCC1,
		"Management, overseen by the board, sets up the structure, reporting lines, " +
			"authority and responsibilities needed to meet the company's objectives."},
	{"CC1.4", Security, seriesCC1,
		"The company hires, trains, develops and keeps people with the skills its " +
			"objectives need, and plans for succession in key roles."},
	{"CC1.5", Security, seriesCC1,
		"People are held accountable for their internal control duties through clear " +
			"expectations, performance measures, incentives and, where needed, discipline."},
	{"CC2.1", Security, seriesCC2,
		"The company gathers or produces relevant, reliable information and uses it to " +
			"keep its internal controls working."},
	{"CC2.2", Security, seriesCC2,
		"Objectives and control responsibilities are communicated inside the company, " +
			"along with a channel, such as a whistleblower line, for staff to raise " +
			"concerns."},
	{"CC2.3", Security, seriesCC2,
		"The company tells customers, vendors, regulators and other outside parties " +
			"what they need to know about matters that affect internal control, including " +
			"its commitments and how to report problems."},
	{"CC3.1", Security, seriesCC3,
		"Objectives are stated clearly enough that the risks threatening them can be " +
			"identified and assessed."},
	{"CC3.2", Security, seriesCC3,
		"Risks to the objectives are identified across the company, including those " +
			"coming from vendors, and analyzed to decide how each one will be handled."},
	{"CC3.3", Security, seriesCC3,
		"The risk assessment weighs the chance of fraud: the pressures, opportunities " +
			"and excuses behind it, and the ways systems and data could be misused."},
	{"CC3.4", Security, seriesCC3,
		"The company spots and assesses changes, inside or outside it, in the business, " +
			"leadership, technology or vendors, that could significantly affect its " +
			"controls."},
	{"CC4.1", Security, seriesCC4,
		"The company runs ongoing and periodic evaluations, such as internal audits, " +
			"automated checks and penetration tests, to confirm that controls exist and " +
			"work."},
	{"CC4.2", Security, seriesCC4,
		"Control deficiencies are evaluated and reported promptly to the people who " +
			"must fix them, including senior management and the board, and their correction " +
			"is tracked."},
	{"CC5.1", Security, seriesCC5,
		"The company chooses and builds control activities that bring the risks to its " +
			"objectives down to acceptable levels."},
	{"CC5.2", Security, seriesCC5,
		"The company chooses and builds general controls over technology, covering " +
			"infrastructure, security management, and how systems are acquired, developed " +
			"and maintained."},
	{"CC5.3", Security, seriesCC5,
		"Controls are put into practice through policies that say what is expected and " +
			"procedures that carry them out, each with a named owner."},
	{"CC6.1", Security, seriesCC6,
		"Software, infrastructure and architecture guard information assets against " +
			"unauthorized logical access: an asset inventory, identification and " +
			"authentication of users, restricted access paths, and encryption with managed " +
			"keys."},
	{"CC6.2", Security, seriesCC6,
		"Internal and external users are registered and authorized before they get " +
			"credentials, and their access is removed once it is no longer authorized."},
	{"CC6.3", Security, seriesCC6,
		"Access to data, software and functions is granted, changed and removed by " +
			"role, following least privilege and segregation of duties, and roles are " +
			"reviewed periodically."},
	{"CC6.4", Security, seriesCC6,
		"Physical access to facilities and protected assets, such as data centers and " +
			"backup media, is restricted to authorized people, including at cloud " +
			"providers."},
	{"CC6.5", Security, seriesCC6,
		"Protection of a physical asset is dropped only once the data and software on " +
			"it can no longer be read or recovered, for example by secure wiping or " +
			"destruction."},
	{"CC6.6", Security, seriesCC6,
		"Logical access controls defend the system against threats from outside its " +
			"boundaries, such as with firewalls, restricted ports, strong authentication of " +
			"remote users and intrusion detection."},
	{"CC6.7", Security, seriesCC6,
		"Only authorized users and processes may send, move or remove information, and " +
			"information is protected while in transit or on removable media, for example " +
			"by encryption."},
	{"CC6.8", Security, seriesCC6,
		"Controls prevent, or detect and respond to, unauthorized or malicious " +
			"software, for example by limiting who can install software and by running " +
			"anti-malware."},
	{"CC7.1", Security, seriesCC7,
		"Detection and monitoring find configuration changes that open vulnerabilities " +
			"and exposure to newly disclosed ones, for example through configuration " +
			"baselines and vulnerability scans."},
	{"CC7.2", Security, seriesCC7,
		"System components and their operation are watched for anomalies that could " +
			"signal attacks, natural disasters or errors, and anomalies are analyzed to " +
			"decide whether they are security events."},
	{"CC7.3", Security, seriesCC7,
		"Security events are evaluated to decide whether they could cause, or have " +
			"caused, a failure to meet objectives, in other words whether they are " +
			"incidents."},
	{"CC7.4", Security, seriesCC7,
		"Security incidents are handled under a defined response program, with assigned " +
			"roles, to understand, contain, remediate and communicate them."},
	{"CC7.5", Security, seriesCC7,
		"The company plans and carries out recovery from security incidents, restores " +
			"affected operations and applies the lessons learned."},
	{"CC8.1", Security, seriesCC8,
		"Every change to infrastructure, data, software or procedures goes through a " +
			"controlled process: authorized, designed, documented, tested and approved " +
			"before release, with a defined path for emergency changes."},
	{"CC9.1", Security, seriesCC9,
		"The company identifies and puts in place ways to reduce the risk of business " +
			"disruption, such as continuity planning and insurance."},
	{"CC9.2", Security, seriesCC9,
		"Risks from vendors and business partners are assessed and managed, from " +
			"selection and contract terms through ongoing monitoring to the end of the " +
			"relationship."},

	// Availability.
	{"A1.1", Availability, seriesA1,
		"Processing capacity and the use of system components are monitored and " +
			"evaluated so that demand is met and capacity is added in time to keep " +
			"availability commitments."},
	{"A1.2", Availability, seriesA1,
		"The company puts in place, runs, monitors and maintains the environmental " +
			"protections, software, data backups and recovery infrastructure its " +
			"availability commitments need."},
	{"A1.3", Availability, seriesA1,
		"Recovery plan procedures, including restoring data from backup, are tested to " +
			"confirm the system can be brought back as committed."},

	// Confidentiality.
	{"C1.1", Confidentiality, seriesC1,
		"Confidential information is identified and protected from the time it is " +
			"received or created until its retention period ends."},
	{"C1.2", Confidentiality, seriesC1,
		"Confidential information is identified for disposal and destroyed once it is " +
			"no longer to be kept, as confidentiality commitments require."},

	// Processing integrity.
	{"PI1.1", ProcessingIntegrity, seriesPI1,
		"The company produces, uses and communicates good information about what its " +
			"processing must achieve, including definitions of the data processed and " +
			"specifications of its products and services."},
	{"PI1.2", ProcessingIntegrity, seriesPI1,
		"Policies and procedures over system inputs make sure the data entering " +
			"processing is complete and accurate, as specifications require."},
	{"PI1.3", ProcessingIntegrity, seriesPI1,
		"Policies and procedures over processing make sure products, services and " +
			"reports come out as specified, with errors found and corrected promptly."},
	{"PI1.4", ProcessingIntegrity, seriesPI1,
		"Policies and procedures over outputs make sure they are complete, accurate and " +
			"timely and reach only their intended recipients."},
	{"PI1.5", ProcessingIntegrity, seriesPI1,
		"Inputs, items in process and outputs are stored completely, accurately and on " +
			"time, and protected from unauthorized change or loss, as specifications " +
			"require."},

	// Privacy.
	{"P1.1", Privacy, seriesP1,
		"Data subjects get clear notice of the company's privacy practices, and the " +
			"notice is updated and communicated promptly when those practices change."},
	{"P2.1", Privacy, seriesP2,
		"Data subjects are told what choices they have over the collection, use, " +
			"retention, disclosure and disposal of their personal information, and their " +
			"consent is obtained and recorded where needed."},
	{"P3.1", Privacy, seriesP3,
		"Personal information is collected only as the privacy objectives allow, by " +
			"fair and lawful means, including when it comes from third parties."},
	{"P3.2", Privacy, seriesP3,
		"Where explicit consent is required, data subjects are told why the information " +
			"is needed and what follows if they refuse, and consent is obtained before " +
			"collection."},
	{"P4.1", Privacy, seriesP4,
		"Personal information is used only for the purposes set out in the privacy " +
			"objectives."},
	{"P4.2", Privacy, seriesP4,
		"Personal information is kept no longer than the privacy objectives allow, and " +
			"is protected from loss and misuse while it is kept."},
	{"P4.3", Privacy, seriesP4,
		"Personal information is disposed of securely when it is no longer needed or " +
			"when a valid deletion request is received."},
	{"P5.1", Privacy, seriesP5,
		"Authenticated data subjects can review the personal information held about " +
			"them and get a copy on request; when access is refused, they are told why."},
	{"P5.2", Privacy, seriesP5,
		"Personal information is corrected or completed based on what data subjects " +
			"provide, the change is passed on to third parties as needed, and any refusal " +
			"is explained."},
	{"P6.1", Privacy, seriesP6,
		"Personal information is disclosed to third parties only with the data " +
			"subject's explicit consent, obtained before the disclosure."},
	{"P6.2", Privacy, seriesP6,
		"A complete, accurate and timely record is kept of authorized disclosures of " +
			"personal information."},
	{"P6.3", Privacy, seriesP6,
		"A complete, accurate and timely record is kept of unauthorized disclosures, " +
			"including breaches, whether the company found them or was told of them."},
	{"P6.4", Privacy, seriesP6,
		"Vendors and other third parties with access to personal information commit to " +
			"protecting it, their compliance is checked periodically, and problems are " +
			"corrected."},
	{"P6.5", Privacy, seriesP6,
		"Vendors and other third parties with access to personal information commit to " +
			"reporting any actual or suspected unauthorized disclosure, and the company " +
			"acts on those reports."},
	{"P6.6", Privacy, seriesP6,
		"Affected data subjects, regulators and others are notified of breaches and " +
			"incidents involving personal information as commitments and law require."},
	{"P6.7", Privacy, seriesP6,
		"On request, data subjects receive an account of the personal information held " +
			"about them and of the disclosures made of it."},
	{"P7.1", Privacy, seriesP7,
		"Personal information is collected and kept accurate, current, complete and " +
			"relevant to the purposes it serves."},
	{"P8.1", Privacy, seriesP8,
		"Privacy inquiries, complaints and disputes from data subjects and others are " +
			"received, resolved and answered, and the corrections or other actions they " +
			"call for are made promptly."},
}

// CriterionByID returns the criterion with the given id, such as "CC6.1",
// and whether there is one. Ids are matched exactly.
func CriterionByID(id string) (Criterion, bool) {
	for _, c := range Criteria {
		if c.ID == id {
			return c, true
		}
	}
	return Criterion{}, false
}
