package framework

// DefaultNormalizeScore scales scores so that the highest becomes
// maxPriority (keeping proportions), and with reverse flips them so that the
// lowest raw score wins. All-zero input stays zero (or all max with reverse),
// matching upstream's helper.
func DefaultNormalizeScore(maxPriority int64, reverse bool, scores []NodeScore) *Status {
	var highest int64
	for _, s := range scores {
		highest = max(highest, s.Score)
	}
	if highest == 0 {
		if reverse {
			for i := range scores {
				scores[i].Score = maxPriority
			}
		}
		return nil
	}
	for i := range scores {
		s := scores[i].Score * maxPriority / highest
		if reverse {
			s = maxPriority - s
		}
		scores[i].Score = s
	}
	return nil
}
