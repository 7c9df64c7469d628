//! `import-csv`, the library function, on both backends.

use auth::import::import_csv;

use crate::{Backend, Storage, spawn_on};

on_both_backends!(
    plaintext_users_are_imported_around_bad_lines_and_a_reimport_leaves_them_as_they_are,
    hashed_users_are_imported_as_they_are,
);

async fn plaintext_users_are_imported_around_bad_lines_and_a_reimport_leaves_them_as_they_are(backend: Backend) {
    let Some(storage) = Storage::new(backend, true).await else { return };
    let auth = spawn_on(&storage).await;
    let file = storage.dir.path().join("database.csv");
    std::fs::write(
        &file,
        "username,password\nuser1,password1\nadmin,1\nbad name!,password1\nuser2,password2,extra\nuser3,password3\n",
    )
    .unwrap();
    let report = import_csv(&auth.state.users, &file).await.unwrap();
    assert_eq!((report.added, report.skipped), (3, 0), "{report:?}");
    let bad_lines: Vec<u64> = report.bad_lines.iter().map(|bad| bad.line).collect();
    assert_eq!(bad_lines, [4, 5], "{report:?}");
    assert_eq!(auth.post("/login", "username=user3&password=password3").await.0, 200, "the line after the bad ones");
    assert_eq!(auth.post("/login", "username=admin&password=1").await.0, 200, "the original's short passwords work");
    assert_eq!(auth.post("/login", "username=user2&password=password2").await.0, 401, "a bad line adds nobody");

    // The original's file may have no header; existing users keep their password.
    std::fs::write(&file, "USER1,changed-password\nuser4,password4\n").unwrap();
    let report = import_csv(&auth.state.users, &file).await.unwrap();
    assert_eq!((report.added, report.skipped, report.bad_lines.len()), (1, 1, 0), "{report:?}");
    assert_eq!(auth.post("/login", "username=user1&password=password1").await.0, 200);
    assert_eq!(auth.post("/login", "username=USER1&password=changed-password").await.0, 401);
    assert_eq!(auth.post("/login", "username=user4&password=password4").await.0, 200);
    assert_eq!(auth.state.users.count().await.unwrap(), 4);
}

async fn hashed_users_are_imported_as_they_are(backend: Backend) {
    let Some(storage) = Storage::new(backend, true).await else { return };
    let auth = spawn_on(&storage).await;
    let file = storage.dir.path().join("hashed.csv");
    let hash = auth::users::hash_password("bobs-password").unwrap();
    std::fs::write(&file, format!("username,password_hash\nbob,\"{hash}\"\ncarol,password1\n")).unwrap();
    let report = import_csv(&auth.state.users, &file).await.unwrap();
    assert_eq!((report.added, report.skipped), (1, 0), "{report:?}");
    assert_eq!(report.bad_lines.len(), 1, "a plaintext password in a hashed file: {report:?}");
    assert_eq!(report.bad_lines[0].line, 3);
    assert_eq!(auth.post("/login", "username=bob&password=bobs-password").await.0, 200);
    assert_eq!(auth.post("/login", "username=carol&password=password1").await.0, 401);

    // A hash in a file that says (by having no header) it holds passwords is refused.
    std::fs::write(&file, format!("dave,\"{hash}\"\n")).unwrap();
    let report = import_csv(&auth.state.users, &file).await.unwrap();
    assert_eq!((report.added, report.bad_lines.len()), (0, 1), "{report:?}");
}
