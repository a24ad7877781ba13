//! nRF52840 DK: UARTE0 on the interface MCU's virtual COM port, 460800 baud, RTS/CTS.
//!
//! `BufferedUarte` keeps receiving into its ring buffer between our reads, counting bytes with
//! a TIMER driven over PPI. Resources are picked clear of the 802.15.4 driver (TIMER0-2, PPI
//! channels 6-14, groups 0-2) and MPSL (TIMER0, RTC0, PPI channels 19, 30, 31).

use embassy_nrf::buffered_uarte::{self, BufferedUarte, BufferedUarteRx, BufferedUarteTx};
use embassy_nrf::interrupt::typelevel::Binding;
use embassy_nrf::peripherals::{P0_05, P0_06, P0_07, P0_08, PPI_CH0, PPI_CH1, PPI_GROUP5, TIMER4, UARTE0};
use embassy_nrf::uarte::{Baudrate, Config, Parity};
use embassy_nrf::{interrupt, Peri};
use static_cell::StaticCell;

/// Room for several full Spinel frames each way (a 127-byte PSDU is ~300 bytes escaped).
const RX_BUF_LEN: usize = 2048;
const TX_BUF_LEN: usize = 2048;

pub struct HostRx(BufferedUarteRx<'static>);
pub struct HostTx(BufferedUarteTx<'static>);

impl HostRx {
    /// Waits for at least one byte. A line error (overrun, framing) drops what was pending
    /// and reads on: the HDLC decoder resynchronises at the next flag.
    pub async fn read(&mut self, buf: &mut [u8]) -> usize {
        loop {
            match self.0.read(buf).await {
                Ok(n) if n > 0 => return n,
                _ => continue,
            }
        }
    }
}

impl HostTx {
    pub async fn write_all(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match self.0.write(bytes).await {
                Ok(n) if n > 0 => bytes = bytes.get(n..).unwrap_or_default(),
                // The UARTE reports no TX errors today; dropping the rest keeps us going.
                _ => return,
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub fn start(
    uarte: Peri<'static, UARTE0>,
    timer: Peri<'static, TIMER4>,
    ppi_ch1: Peri<'static, PPI_CH0>,
    ppi_ch2: Peri<'static, PPI_CH1>,
    ppi_group: Peri<'static, PPI_GROUP5>,
    txd: Peri<'static, P0_06>,
    rxd: Peri<'static, P0_08>,
    rts: Peri<'static, P0_05>,
    cts: Peri<'static, P0_07>,
    irqs: impl Binding<interrupt::typelevel::UARTE0, buffered_uarte::InterruptHandler<UARTE0>> + 'static,
) -> (HostRx, HostTx) {
    static RX_BUF: StaticCell<[u8; RX_BUF_LEN]> = StaticCell::new();
    static TX_BUF: StaticCell<[u8; TX_BUF_LEN]> = StaticCell::new();
    let mut config = Config::default();
    config.baudrate = Baudrate::Baud460800;
    config.parity = Parity::Excluded;
    let uart = BufferedUarte::new_with_rtscts(
        uarte,
        timer,
        ppi_ch1,
        ppi_ch2,
        ppi_group,
        rxd,
        txd,
        cts,
        rts,
        irqs,
        config,
        RX_BUF.init([0; RX_BUF_LEN]),
        TX_BUF.init([0; TX_BUF_LEN]),
    );
    let (rx, tx) = uart.split();
    (HostRx(rx), HostTx(tx))
}
