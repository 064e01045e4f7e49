//! Counters for the page, the CLI and the bandwidth benchmark.

/// Counters for the page, the CLI and the bandwidth benchmark.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    pub packets_sent: u64,
    pub bytes_sent: u64,
    pub packets_received: u64,
    pub bytes_received: u64,
    /// Datagrams or streams that failed to open under any installed key.
    pub packets_rejected: u64,
    /// Opened fine but not valid protocol messages.
    pub packets_malformed: u64,
    pub streams_sent: u64,
    pub stream_bytes_sent: u64,
    pub streams_received: u64,
    pub stream_bytes_received: u64,
    pub probes_sent: u64,
    pub probes_failed: u64,
    /// Suspicions that timed out here, declaring a member dead.
    pub declared_dead: u64,
    /// Times this node refuted a suspicion or death of itself.
    pub refutations: u64,
    /// Stream probes sent when a direct probe timed out, and those answered
    /// in time (each answer saved a probe from failing).
    pub stream_probes_sent: u64,
    pub stream_probe_acks: u64,
    /// Alives and member records of unknown names, and service updates of
    /// unknown nodes, dropped because the table was full
    /// ([`Config::max_members`]): a microcloud grown past the cap, or a
    /// flood of fake members.
    pub members_refused: u64,
    /// Service entries for a new slot of a node whose catalog was full
    /// ([`crate::catalog::MAX_SLOTS`]), dropped: fake services.
    pub services_refused: u64,
    /// Claims refused because they moved a counter (an incarnation, a
    /// catalog version, a tags or event Lamport time) more than
    /// [`crate::wire::MAX_JUMP`] above what this node held: forged.
    pub jumps_refused: u64,
}
