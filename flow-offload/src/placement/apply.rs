//! Validated changes to the index: a plan applied or undone all or nothing, every write checked
//! first as the NIC checks it, against the state as it will be when the write runs.

use super::{Entry, IndexPos, Move, Plan, ShadowIndex};
use rtl_spec::codes::Status;

/// One step of a validated state change (see [`ShadowIndex::execute`]).
#[derive(Clone, Copy)]
pub(super) enum Op {
    /// Occupy a free position.
    Occupy(IndexPos, Entry),
    /// Make-before-break move.
    Move(Move),
    /// Clear a position that must hold this entry.
    Clear(IndexPos, Entry),
}

impl ShadowIndex {
    /// Applies `plan`'s moves in order and puts `entry` at its target. The whole plan is
    /// validated first against the current state, and nothing changes on an error:
    /// `SlotMismatch` (a move's `from` does not hold its entry), `SlotLive`, `BadPlacement`,
    /// `SlotOutOfRange`, `RecordOutOfRange`, as [`Self::occupy`]; `BadPlacement` also when
    /// `entry` (its hash, record and direction) is already placed.
    pub fn apply(&mut self, plan: &Plan, entry: Entry) -> Result<(), Status> {
        if self.find(entry.hash, |o| o == entry.occupant()).is_some() {
            return Err(Status::BadPlacement);
        }
        self.execute(plan.moves.iter().map(|m| Op::Move(*m)).chain([Op::Occupy(plan.target, entry)]))
    }

    /// Reverses an applied `plan` exactly: clears its target (which must hold `entry`), then
    /// moves every moved entry back, last move first (still make-before-break). Validated as
    /// [`Self::apply`] is; nothing changes on an error.
    pub fn undo(&mut self, plan: &Plan, entry: Entry) -> Result<(), Status> {
        let back = plan.moves.iter().rev().map(|m| Op::Move(Move { entry: m.entry, from: m.to, to: m.from }));
        self.execute([Op::Clear(plan.target, entry)].into_iter().chain(back))
    }

    /// Validates every op against the state as it will be when the op runs (earlier ops
    /// included), then runs them all; on an error nothing has changed.
    fn execute(&mut self, ops: impl Iterator<Item = Op>) -> Result<(), Status> {
        // Positions the ops have written so far, newest last, over the current state (the
        // buffer is the index's, so that an install allocates nothing).
        let mut overlay = std::mem::take(&mut self.overlay);
        overlay.clear();
        let validated = self.validate(ops, &mut overlay);
        if validated.is_ok() {
            // Every write was validated in order, so replaying them gives the same end state.
            for &(pos, entry) in &overlay {
                self.put(pos, entry);
            }
        }
        self.overlay = overlay;
        validated
    }

    /// Checks `ops` in order, recording in `overlay` the writes they would make.
    pub(super) fn validate(
        &self,
        ops: impl Iterator<Item = Op>,
        overlay: &mut Vec<(IndexPos, Option<Entry>)>,
    ) -> Result<(), Status> {
        let written = |overlay: &[(IndexPos, Option<Entry>)], pos: IndexPos| {
            overlay.iter().rev().find(|(p, _)| *p == pos).map(|(_, e)| *e)
        };
        let live = |overlay: &[(IndexPos, Option<Entry>)], pos: IndexPos| {
            written(overlay, pos).map_or_else(|| self.occupant(pos).is_some(), |e| e.is_some())
        };
        let holds = |overlay: &[(IndexPos, Option<Entry>)], pos: IndexPos, entry: &Entry| {
            written(overlay, pos).map_or_else(|| self.holds(pos, entry), |e| e.as_ref() == Some(entry))
        };
        for op in ops {
            match op {
                Op::Occupy(pos, entry) => {
                    self.check_occupy(pos, &entry, live(overlay, pos))?;
                    overlay.push((pos, Some(entry)));
                }
                Op::Move(m) => {
                    if !holds(overlay, m.from, &m.entry) {
                        return Err(Status::SlotMismatch);
                    }
                    self.check_occupy(m.to, &m.entry, live(overlay, m.to))?;
                    overlay.push((m.to, Some(m.entry)));
                    overlay.push((m.from, None));
                }
                Op::Clear(pos, entry) => {
                    if !holds(overlay, pos, &entry) {
                        return Err(Status::SlotMismatch);
                    }
                    overlay.push((pos, None));
                }
            }
        }
        Ok(())
    }
}
