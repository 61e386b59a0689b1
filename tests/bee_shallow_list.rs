//! JS Vitra's shallow `list(prefix)`: direct children in key order, leaf entries with their
//! block and value, one container entry per deeper child segment, a leaf that also has
//! children marked as a container, and names at or above U+00FF included (0.1.3 drops them).

use vitra::bee::{path_to_key, Bee, ListEntry, ListOptions};
use vitra::codec::Value;

fn bee_with(paths: &[&str]) -> Bee<Vec<Vec<u8>>> {
    let mut bee = Bee::new(Vec::<Vec<u8>>::new());
    let mut b = bee.batch();
    for (i, p) in paths.iter().enumerate() {
        b.put_value(&path_to_key(p), &Value::Number(i as f64))
            .unwrap();
    }
    b.flush().unwrap();
    bee
}

fn summary(list: &[ListEntry]) -> Vec<(String, bool, Option<u64>)> {
    list.iter()
        .map(|e| (e.path.clone(), e.container, e.seq))
        .collect()
}

#[test]
fn root_listing_has_leaves_containers_and_high_unicode_names() {
    let bee = bee_with(&[
        "/a",
        "/a/b",
        "/a/c/d",
        "/b/Ω",
        "/中文/x",
        "/😀",
        "/zeta",
        "/.sys/acks/genesis",
        "/ÿ",
        "/b/ÿz/q",
    ]);
    let list = bee.list("/").unwrap();
    assert_eq!(
        summary(&list),
        vec![
            ("/.sys".to_string(), true, None),
            ("/a".to_string(), true, Some(1)),
            ("/b".to_string(), true, None),
            ("/zeta".to_string(), false, Some(7)),
            ("/ÿ".to_string(), false, Some(9)),
            ("/中文".to_string(), true, None),
            ("/😀".to_string(), false, Some(6)),
        ]
    );
    assert_eq!(list[1].name, "a");
    assert_eq!(list[1].decode_value().unwrap(), Value::Number(0.0));
    assert_eq!(list[6].name, "😀");
    assert_eq!(list[0].value, None);

    assert_eq!(
        summary(&bee.list("/a").unwrap()),
        vec![
            ("/a/b".to_string(), false, Some(2)),
            ("/a/c".to_string(), true, None)
        ]
    );
    assert_eq!(
        summary(&bee.list("/b/").unwrap()),
        // byte order: ÿ is c3 bf, Ω is ce a9
        vec![
            ("/b/ÿz".to_string(), true, None),
            ("/b/Ω".to_string(), false, Some(4))
        ]
    );
    assert_eq!(summary(&bee.list("/nothing").unwrap()), vec![]);
    assert_eq!(summary(&bee.list("/a/b").unwrap()), vec![]);
}

#[test]
fn list_options_reverse_offset_limit() {
    let bee = bee_with(&["/x/1", "/x/2", "/x/3", "/x/4"]);
    let snap = bee.snapshot();
    let names = |o: ListOptions| {
        snap.list_with("/x", &o)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect::<Vec<_>>()
    };
    assert_eq!(names(ListOptions::default()), ["1", "2", "3", "4"]);
    assert_eq!(
        names(ListOptions {
            reverse: true,
            offset: Some(1),
            limit: Some(2)
        }),
        ["3", "2"]
    );
    assert_eq!(
        names(ListOptions {
            offset: Some(3),
            ..Default::default()
        }),
        ["4"]
    );
    assert_eq!(
        names(ListOptions {
            limit: Some(1),
            ..Default::default()
        }),
        ["1"]
    );
}

#[test]
fn listing_a_checkout_sees_the_past() {
    let mut bee = bee_with(&["/x/1", "/x/2"]);
    let v = bee.version();
    bee.put_value(&path_to_key("/x/3"), &Value::Bool(true))
        .unwrap();
    bee.del(&path_to_key("/x/1")).unwrap();
    let now: Vec<_> = bee
        .list("/x")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    let then: Vec<_> = bee
        .checkout(v)
        .unwrap()
        .list("/x")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(now, ["2", "3"]);
    assert_eq!(then, ["1", "2"]);
}
