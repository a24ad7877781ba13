//! The fleet survives a restart: devices saved through the store come back after reopening it.

use ferry::fleet::device::{Device, Eui64, Known, Lifecycle, LinkQuality, Parent, Position, Source};
use ferry::store::{devices, Store};
use jiff::Timestamp;

#[tokio::test]
async fn devices_survive_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let now = Timestamp::from_second(1_800_000_000).expect("valid time");
    let mut device = Device::discovered(Eui64([2, 0, 0, 0, 0, 0, 0, 0x21]), now);
    device.transition(Lifecycle::Commissioned, now).expect("legal step");
    device.group = Some(Known::new("flat-1".into(), Source::Config, now));
    device.battery_percent = Some(Known::new(80, Source::DeviceReport, now));
    device.link = Some(Known::new(LinkQuality { rssi_dbm: -70, lqi: 200, etx: 1.3 }, Source::Rpl, now));
    let parent = Parent::Node(Eui64([2, 0, 0, 0, 0, 0, 0, 0x11]));
    device.position = Some(Known::new(Position { parent, hops: 3 }, Source::Rpl, now));
    device.components.insert("app".into(), Known::new(7, Source::Delivery, now));
    {
        let store = Store::open(dir.path()).expect("opens");
        let saved = device.clone();
        store.call(move |conn| Ok(devices::save(conn, &saved))).await.expect("store thread").expect("saved");
    }
    let store = Store::open(dir.path()).expect("reopens");
    let eui = device.eui64;
    let loaded = store.call(move |conn| Ok(devices::load(conn, eui))).await.expect("store thread").expect("loads");
    assert_eq!(loaded, Some(device));
    assert!(ferry::store::schema_version() >= 3);
}
