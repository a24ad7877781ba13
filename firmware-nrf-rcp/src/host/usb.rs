//! nRF52840 Dongle: USB CDC-ACM (the host sees /dev/ttyACM0; the baud rate it sets is ignored).
//!
//! A reader task moves OUT packets into a pipe, so reads by the RCP loop are cancel-safe and
//! USB keeps flowing while the loop writes.

use embassy_executor::Spawner;
use embassy_nrf::interrupt::typelevel::Binding;
use embassy_nrf::peripherals::USBD;
use embassy_nrf::usb::vbus_detect::{self, HardwareVbusDetect};
use embassy_nrf::usb::{self, Driver};
use embassy_nrf::{interrupt, Peri};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::pipe::Pipe;
use embassy_usb::class::cdc_acm::{CdcAcmClass, Receiver, Sender, State};
use embassy_usb::{Builder, UsbDevice};
use static_cell::StaticCell;

type UsbDriver = Driver<'static, HardwareVbusDetect>;

/// Full-speed bulk endpoints carry 64 bytes a packet.
const MAX_PACKET: usize = 64;
/// pid.codes' test VID/PID, for private use; a shipped product needs its own.
const USB_VID: u16 = 0x1209;
const USB_PID: u16 = 0x0001;

static FROM_HOST: Pipe<CriticalSectionRawMutex, 1024> = Pipe::new();

pub struct HostRx(());
pub struct HostTx(Sender<'static, UsbDriver>);

impl HostRx {
    pub async fn read(&mut self, buf: &mut [u8]) -> usize {
        FROM_HOST.read(buf).await
    }
}

impl HostTx {
    /// Writes in packets; while no host has the port open the bytes are dropped, as a UART
    /// would lose them, and the host's Spinel reset brings both sides back in step.
    pub async fn write_all(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(MAX_PACKET) {
            if self.0.write_packet(chunk).await.is_err() {
                return;
            }
        }
    }
}

pub fn start(
    spawner: Spawner,
    usbd: Peri<'static, USBD>,
    serial: &'static str,
    irqs: impl Binding<interrupt::typelevel::USBD, usb::InterruptHandler<USBD>>
        + Binding<interrupt::typelevel::CLOCK_POWER, vbus_detect::InterruptHandler>
        + 'static,
) -> (HostRx, HostTx) {
    let driver = Driver::new(usbd, irqs, HardwareVbusDetect::new(irqs));

    let mut config = embassy_usb::Config::new(USB_VID, USB_PID);
    config.manufacturer = Some("ferry");
    config.product = Some("ferry RCP (Spinel)");
    config.serial_number = Some(serial);
    config.max_power = 100;
    config.max_packet_size_0 = 64;

    static CONFIG_DESC: StaticCell<[u8; 256]> = StaticCell::new();
    static BOS_DESC: StaticCell<[u8; 256]> = StaticCell::new();
    static MSOS_DESC: StaticCell<[u8; 0]> = StaticCell::new();
    static CONTROL_BUF: StaticCell<[u8; 64]> = StaticCell::new();
    static CDC_STATE: StaticCell<State<'static>> = StaticCell::new();

    let mut builder = Builder::new(
        driver,
        config,
        CONFIG_DESC.init([0; 256]),
        BOS_DESC.init([0; 256]),
        MSOS_DESC.init([]),
        CONTROL_BUF.init([0; 64]),
    );
    let class = CdcAcmClass::new(&mut builder, CDC_STATE.init(State::new()), MAX_PACKET as u16);
    let device = builder.build();
    let (tx, rx) = class.split();

    spawner.spawn(crate::unwrap_spawn(usb_device_task(device)));
    spawner.spawn(crate::unwrap_spawn(usb_rx_task(rx)));
    (HostRx(()), HostTx(tx))
}

#[embassy_executor::task]
async fn usb_device_task(mut device: UsbDevice<'static, UsbDriver>) -> ! {
    device.run().await
}

#[embassy_executor::task]
async fn usb_rx_task(mut rx: Receiver<'static, UsbDriver>) -> ! {
    let mut packet = [0u8; MAX_PACKET];
    loop {
        rx.wait_connection().await;
        // Read until the host goes away (endpoint disabled), then wait for it again.
        while let Ok(n) = rx.read_packet(&mut packet).await {
            FROM_HOST.write_all(&packet[..n]).await;
        }
    }
}
