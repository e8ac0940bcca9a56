//! The relationship text form (`document:1#viewer@user:alice`, with subject sets,
//! wildcards, `#...`): parsing never panics, and what parses prints back to text that
//! parses to the same relationship. The object and subject forms alone too.

#![no_main]

use arbiter::model::{ObjectRef, Relationship, SubjectRef};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(relationship) = text.parse::<Relationship>() {
        let printed = relationship.to_string();
        let again: Relationship = printed.parse().expect("printed relationship parses");
        assert_eq!(again, relationship);
    }
    if let Ok(object) = text.parse::<ObjectRef>() {
        let again: ObjectRef = object.to_string().parse().expect("printed object parses");
        assert_eq!(again, object);
    }
    if let Ok(subject) = text.parse::<SubjectRef>() {
        let again: SubjectRef = subject.to_string().parse().expect("printed subject parses");
        assert_eq!(again, subject);
    }
});
