//! ferry's radio co-processor for the nRF52840: Spinel over HDLC-lite to the host, Nordic's
//! 802.15.4 driver (over MPSL) to the air, and `ferry-rcp-core`'s [`Rcp`] machine in between.
//!
//! Boards (exactly one cargo feature): `board-dk` (UARTE 460800 baud with RTS/CTS on the
//! interface MCU's VCOM) and `board-dongle` (USB CDC-ACM, behind Nordic's open bootloader).
//!
//! Tasks: `mpsl_task` (MPSL's low-priority work), [`radio::radio_task`] (receive, transmit,
//! energy scan), the USB tasks on the Dongle, and `main`, which runs the RCP loop: host bytes →
//! HDLC decoder → [`Rcp::handle_host_frame`], radio events → [`Rcp::handle_radio_event`], and
//! every reply HDLC-encoded back to the host.
#![no_std]
#![no_main]

#[macro_use]
mod fmt;

mod callouts;
mod host;
mod mac_frame;
mod radio;

use embassy_executor::Spawner;
use embassy_futures::select::{select, Either};
use embassy_nrf::interrupt::{InterruptExt, Priority};
use embassy_nrf::{bind_interrupts, pac};
use ferry_rcp_core::hdlc::{self, SpinelDecoder};
use ferry_rcp_core::rcp::{Config, Rcp, ToHost, DEFAULT_CAPS};
use ferry_rcp_core::spinel::Status;
use nrf_mpsl::raw as mpsl_raw;
use nrf_mpsl::MultiprotocolServiceLayer;
use static_cell::StaticCell;

#[cfg(feature = "defmt")]
use defmt_rtt as _;

#[cfg(not(any(feature = "board-dk", feature = "board-dongle")))]
compile_error!("enable one board feature: `board-dk` or `board-dongle`");
#[cfg(all(feature = "board-dk", feature = "board-dongle"))]
compile_error!("enable only one board feature");

bind_interrupts!(struct Irqs {
    // MPSL's low-priority work and the 802.15.4 driver's notifications share this line.
    EGU0_SWI0 => nrf_mpsl::LowPrioInterruptHandler, nrf_802154::EguInterruptHandler;
    RADIO => nrf_mpsl::HighPrioInterruptHandler;
    TIMER0 => nrf_mpsl::HighPrioInterruptHandler;
    RTC0 => nrf_mpsl::HighPrioInterruptHandler;
    RTC2 => nrf_802154::LpTimerInterruptHandler;
    CLOCK_POWER => nrf_mpsl::ClockInterruptHandler,
        #[cfg(feature = "board-dongle")] embassy_nrf::usb::vbus_detect::InterruptHandler;
    #[cfg(feature = "board-dk")]
    UARTE0 => embassy_nrf::buffered_uarte::InterruptHandler<embassy_nrf::peripherals::UARTE0>;
    #[cfg(feature = "board-dongle")]
    USBD => embassy_nrf::usb::InterruptHandler<embassy_nrf::peripherals::USBD>;
});

/// Largest Spinel frame (HDLC payload) either way.
const SPINEL_MAX: usize = hdlc::MAX_FRAME_LEN;
/// Worst case on the wire: every byte escaped, plus FCS and two flags.
const HDLC_MAX: usize = 2 * (SPINEL_MAX + hdlc::FCS_LEN) + 2;
/// Nordic Semiconductor's OUI, the first half of the EUI-64 (as OpenThread's nRF port does).
const NORDIC_OUI: [u8; 3] = [0xF4, 0xCE, 0x36];

#[embassy_executor::task]
async fn mpsl_task(mpsl: &'static MultiprotocolServiceLayer<'static>) -> ! {
    mpsl.run().await
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let boot_reason = reset_reason();

    let mut config = embassy_nrf::config::Config::default();
    // Both boards carry a 32.768 kHz crystal; MPSL and the embassy timer (RTC1) share LFCLK.
    config.lfclk_source = embassy_nrf::config::LfclkSource::ExternalXtal;
    // Priorities 0 and 1 belong to MPSL and the radio driver's ISRs.
    config.time_interrupt_priority = Priority::P2;
    let p = embassy_nrf::init(config);

    let lfclk = mpsl_raw::mpsl_clock_lfclk_cfg_t {
        source: mpsl_raw::MPSL_CLOCK_LF_SRC_XTAL as u8,
        // Calibration applies to the RC source only.
        rc_ctiv: 0,
        rc_temp_ctiv: 0,
        accuracy_ppm: mpsl_raw::MPSL_DEFAULT_CLOCK_ACCURACY_PPM as u16,
        skip_wait_lfclk_started: mpsl_raw::MPSL_DEFAULT_SKIP_WAIT_LFCLK_STARTED != 0,
    };
    let mpsl_p = nrf_mpsl::Peripherals::new(p.RTC0, p.TIMER0, p.TEMP, p.PPI_CH19, p.PPI_CH30, p.PPI_CH31);
    static MPSL: StaticCell<MultiprotocolServiceLayer<'static>> = StaticCell::new();
    let mpsl = match MultiprotocolServiceLayer::new(mpsl_p, Irqs, lfclk) {
        Ok(m) => MPSL.init(m),
        // Without MPSL there is no radio; a reset is the only way to try again.
        Err(_) => panic!("MPSL init failed"),
    };
    spawner.spawn(unwrap_spawn(mpsl_task(mpsl)));
    // Keep the crystal running for good: USB needs it, and at 460800 baud the UART is past what
    // the internal RC oscillator's tolerance allows. MPSL owns the clock, so ask it.
    let _hfxo = match mpsl.request_hfclk().await {
        Ok(guard) => guard,
        Err(_) => panic!("HFXO request refused"),
    };
    if nrf_mpsl::Hfclk::wait().await.is_err() {
        panic!("HFXO did not start");
    }

    // The driver takes EGU0, TIMER2 and RTC2, and PPI channels 6-14 and groups 0-2 directly
    // through the PAC; nothing else here touches them.
    let radio_p = nrf_802154::RadioPeripherals::new(p.EGU0, p.TIMER2, p.RTC2);
    let driver = nrf_802154::Radio::new(p.RADIO, radio_p, Irqs, mpsl);
    let device_id = device_id();
    let nrf_radio = radio::NrfRadio::new(eui64(device_id));
    spawner.spawn(unwrap_spawn(radio::radio_task(driver)));

    #[cfg(feature = "board-dk")]
    let (mut rx, mut tx) = {
        embassy_nrf::interrupt::UARTE0.set_priority(Priority::P3);
        host::start(p.UARTE0, p.TIMER4, p.PPI_CH0, p.PPI_CH1, p.PPI_GROUP5, p.P0_06, p.P0_08, p.P0_05, p.P0_07, Irqs)
    };
    #[cfg(feature = "board-dongle")]
    let (mut rx, mut tx) = {
        embassy_nrf::interrupt::USBD.set_priority(Priority::P3);
        static SERIAL: StaticCell<[u8; 16]> = StaticCell::new();
        let serial = hex_serial(SERIAL.init([0; 16]), device_id);
        host::start(spawner, p.USBD, serial, Irqs)
    };

    let rcp_config = Config {
        ncp_version: concat!("FERRY-RCP/", env!("CARGO_PKG_VERSION"), "; nRF52840"),
        caps: DEFAULT_CAPS,
        boot_reason,
    };
    let mut rcp = Rcp::new(nrf_radio, rcp_config);
    info!("ferry RCP up");

    static BUFS: StaticCell<Buffers> = StaticCell::new();
    let bufs = BUFS.init(Buffers { decoder: SpinelDecoder::new(), spinel: [0; SPINEL_MAX], hdlc: [0; HDLC_MAX] });

    flush_unsolicited(&mut rcp, bufs, &mut tx).await;
    let mut chunk = [0u8; 64];
    loop {
        match select(rx.read(&mut chunk), radio::EVENTS.receive()).await {
            Either::First(n) => {
                let mut input = &chunk[..n];
                while !input.is_empty() {
                    let (used, frame) = bufs.decoder.feed(input);
                    input = input.get(used..).unwrap_or_default();
                    match frame {
                        Some(Ok(frame)) => {
                            let reply = rcp.handle_host_frame(radio::now_us(), frame, &mut bufs.spinel);
                            send(reply, &bufs.spinel, &mut bufs.hdlc, &mut tx).await;
                        }
                        // Bad FCS, overlong or aborted: the host retries requests it gets no
                        // answer to, so dropping is all we can do.
                        Some(Err(_)) => debug!("dropped a bad HDLC frame"),
                        None => {}
                    }
                }
            }
            Either::Second(event) => {
                let radio = rcp.radio();
                let event = event.as_radio_event(|psdu| radio.acked_with_frame_pending(psdu));
                // `event` borrows the radio only through the closure above, which is done.
                let reply = rcp.handle_radio_event(&event, &mut bufs.spinel);
                send(reply, &bufs.spinel, &mut bufs.hdlc, &mut tx).await;
            }
        }
        flush_unsolicited(&mut rcp, bufs, &mut tx).await;
    }
}

/// The RCP loop's frame buffers, in a static rather than on the main task's stack.
struct Buffers {
    decoder: SpinelDecoder,
    spinel: [u8; SPINEL_MAX],
    hdlc: [u8; HDLC_MAX],
}

/// HDLC-encodes and sends what the RCP machine wrote, if anything.
async fn send(
    reply: ferry_rcp_core::spinel::Result<ToHost>,
    spinel: &[u8],
    hdlc_buf: &mut [u8],
    tx: &mut host::HostTx,
) {
    let n = match reply {
        Ok(ToHost::Send(n)) => n,
        Ok(ToHost::Nothing) => return,
        // Only an output buffer too small for the reply; ours holds the largest Spinel frame.
        Err(_) => {
            warn!("reply did not fit");
            return;
        }
    };
    let Some(frame) = spinel.get(..n) else { return };
    let Ok(len) = hdlc::encode(frame, hdlc_buf) else {
        warn!("HDLC buffer too small");
        return;
    };
    tx.write_all(&hdlc_buf[..len]).await;
}

/// Sends every queued unsolicited frame (boot status, end of scan).
async fn flush_unsolicited<R: ferry_rcp_core::radio::Radio>(
    rcp: &mut Rcp<R>,
    bufs: &mut Buffers,
    tx: &mut host::HostTx,
) {
    loop {
        let reply = match rcp.poll_host(&mut bufs.spinel) {
            Ok(Some(n)) => Ok(ToHost::Send(n)),
            Ok(None) => return,
            Err(e) => Err(e),
        };
        let failed = reply.is_err();
        send(reply, &bufs.spinel, &mut bufs.hdlc, tx).await;
        if failed {
            return;
        }
    }
}

pub(crate) fn unwrap_spawn<S>(
    token: Result<embassy_executor::SpawnToken<S>, embassy_executor::SpawnError>,
) -> embassy_executor::SpawnToken<S> {
    match token {
        Ok(t) => t,
        // Each task is spawned once at boot; a failure is a build mistake.
        Err(_) => panic!("task spawned twice"),
    }
}

/// FICR DEVICEID, unique per chip.
fn device_id() -> u64 {
    let ficr = pac::FICR;
    (u64::from(ficr.deviceid(1).read()) << 32) | u64::from(ficr.deviceid(0).read())
}

/// Nordic's OUI followed by 40 bits of the device ID.
fn eui64(device_id: u64) -> [u8; 8] {
    let id = device_id.to_be_bytes();
    [NORDIC_OUI[0], NORDIC_OUI[1], NORDIC_OUI[2], id[3], id[4], id[5], id[6], id[7]]
}

#[cfg(feature = "board-dongle")]
fn hex_serial(buf: &'static mut [u8; 16], device_id: u64) -> &'static str {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for (i, b) in buf.iter_mut().enumerate() {
        *b = HEX[((device_id >> (60 - 4 * i)) & 0xF) as usize];
    }
    // Only ASCII hex digits were written.
    core::str::from_utf8(buf).unwrap_or("0")
}

/// Why the chip last reset, for the boot LAST_STATUS (cleared so the next boot reads fresh).
fn reset_reason() -> Status {
    // RESETREAS bits: 0 reset pin, 1 watchdog, 2 soft reset, 3 lockup.
    let power = pac::POWER;
    let bits = power.resetreas().read().0;
    power.resetreas().write_value(pac::power::regs::Resetreas(bits));
    if bits & (1 << 1) != 0 {
        Status::ResetWatchdog
    } else if bits & (1 << 3) != 0 {
        Status::ResetFault
    } else if bits & (1 << 2) != 0 {
        Status::ResetSoftware
    } else if bits & (1 << 0) != 0 {
        Status::ResetExternal
    } else {
        Status::ResetPowerOn
    }
}

/// A panic resets the chip: the host sees the boot LAST_STATUS and re-initialises the radio,
/// which is how ot-rcp recovers too.
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    #[cfg(feature = "defmt")]
    defmt::error!("panic: {}", defmt::Display2Format(_info));
    cortex_m::peripheral::SCB::sys_reset()
}
