package store

// MaxRecord is the largest value the store keeps (maxRecord): callers that
// accept input bound for one record, such as the agent's inventory, size
// their own limits from it so that an accepted input is one the store can
// keep.
const MaxRecord = maxRecord
