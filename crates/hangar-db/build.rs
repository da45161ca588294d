//! `sqlx::migrate!` embeds the migrations when the crate compiles; without this, adding a migration
//! file alone would not rebuild the crate, and an incremental build would run without it.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
