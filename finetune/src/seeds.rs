//! Every random stream of a training run, derived in one place from the
//! run's seed and where the run stands: the data order of each epoch, the
//! dropout masks of each pass, the sampling of each rollout group. Resuming
//! from a checkpoint replays a run exactly because each seed is a function
//! of (run seed, purpose, position) and of nothing else.

use srl_models::lora_params::mix64;

/// What a seed is for, and the position it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The shuffle of the training data in `epoch`.
    EpochOrder { epoch: u64 },
    /// The dropout masks of SFT's pass over `example` of `step`.
    Dropout { step: u64, example: u64 },
    /// The dropout masks of an RL pass over rollout `rollout` in inner
    /// update `inner` (of at most 64) of update `update`.
    RlDropout {
        update: u64,
        inner: u64,
        rollout: u64,
    },
    /// The samplers of the rollout group drawn for the `position`-th
    /// instance the run consumes (sample g adds g).
    Rollouts { position: u64 },
}

/// The seed of `purpose` in a run seeded with `seed`.
pub fn seed_for(seed: u64, purpose: Purpose) -> u64 {
    let position = match purpose {
        Purpose::EpochOrder { epoch } => epoch.wrapping_add(0xE90C),
        Purpose::Dropout { step, example } => step * 1_000_003 + example,
        Purpose::RlDropout {
            update,
            inner,
            rollout,
        } => (update * 64 + inner) * 1_000_003 + rollout,
        Purpose::Rollouts { position } => position.wrapping_add(0x5A3D),
    };
    mix64(seed ^ mix64(position))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seeds runs were trained with before they were defined here: a
    /// checkpoint from then resumes with the same streams.
    #[test]
    fn seeds_keep_their_values() {
        let (seed, step, k) = (7u64, 12u64, 3u64);
        assert_eq!(
            seed_for(seed, Purpose::EpochOrder { epoch: 2 }),
            mix64(seed ^ mix64(2u64.wrapping_add(0xE90C)))
        );
        assert_eq!(
            seed_for(seed, Purpose::Dropout { step, example: k }),
            mix64(seed ^ mix64(step * 1_000_003 + k))
        );
        let rl = Purpose::RlDropout {
            update: step,
            inner: 1,
            rollout: k,
        };
        assert_eq!(
            seed_for(seed, rl),
            mix64(seed ^ mix64((step * 64 + 1) * 1_000_003 + k))
        );
        assert_eq!(
            seed_for(seed, Purpose::Rollouts { position: 5 }),
            mix64(seed ^ mix64(5u64.wrapping_add(0x5A3D)))
        );
    }
}
