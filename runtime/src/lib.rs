//! Everything needed to run a model for a user.
