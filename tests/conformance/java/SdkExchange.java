import com.vpcp.services.AgencyServiceImp;
import com.vpcp.services.KnobstickServiceImp;
import com.vpcp.services.VnptProperties;
import com.vpcp.services.model.Agency;
import com.vpcp.services.model.BasicResult;
import com.vpcp.services.model.CountReceiveEdoc;
import com.vpcp.services.model.GetAgenciesResult;
import com.vpcp.services.model.GetEdocResult;
import com.vpcp.services.model.GetReceivedEdocResult;
import com.vpcp.services.model.GetSendEdocResult;
import com.vpcp.services.model.Knobstick;
import com.vpcp.services.model.SendEdocResult;
import com.vpcp.services.model.StatusResult;

/**
 * Drives the axis vendor's SDK through a whole exchange, the way an agency's system uses it.
 *
 * Usage: SdkExchange URL SENDER_SYSTEM SENDER_SECRET SENDER_AGENCY
 *                    RECEIVER_SYSTEM RECEIVER_SECRET FILE STORE_DIR NEW_AGENCY
 *
 * The SDK prints its own chatter on standard output; every result of ours is one line
 * "RESULT step key=value ..." for the Python test to read.
 */
public final class SdkExchange {
    private SdkExchange() {}

    private static void result(String step, BasicResult r, String extra) {
        System.out.println("RESULT " + step + " status=" + r.getStatus() + " ErrorCode="
                + r.getErrorCode() + " ErrorDesc=" + r.getErrorDesc() + (extra.isEmpty() ? "" : " " + extra));
    }

    public static void main(String[] args) throws Exception {
        String url = args[0];
        String senderSystem = args[1];
        String senderSecret = args[2];
        String senderAgency = args[3];
        String receiverSystem = args[4];
        String receiverSecret = args[5];
        String file = args[6];
        String store = args[7];
        String newAgency = args[8];

        VnptProperties senderProps = new VnptProperties(url, senderSystem, senderSecret, store, 3, 3);
        VnptProperties receiverProps = new VnptProperties(url, receiverSystem, receiverSecret, store, 3, 3);

        AgencyServiceImp agencies = new AgencyServiceImp(senderProps);
        GetAgenciesResult list = agencies.getAgenciesList("{}");
        result("agencies", list, "count=" + (list.getAgencies() == null ? -1 : list.getAgencies().size()));

        String record = "{\"id\":\"\",\"pcode\":\"\",\"code\":\"" + newAgency
                + "\",\"name\":\"Sở Khoa học và Công nghệ\",\"mail\":\"skhcn@example.gov.vn\","
                + "\"mobile\":\"\",\"fax\":\"\"}";
        BasicResult registered = agencies.registerAgency("{}", record);
        result("register", registered, "");
        GetAgenciesResult after = new AgencyServiceImp(senderProps).getAgenciesList("{}");
        boolean listed = false;
        if (after.getAgencies() != null) {
            for (Agency a : after.getAgencies()) {
                listed |= newAgency.equals(a.getCode());
            }
        }
        result("agencies-after-register", after, "listed=" + listed);
        BasicResult deleted = new AgencyServiceImp(senderProps).deleteAgency("{\"AgencyCode\":\"" + newAgency + "\"}");
        result("delete", deleted, "");

        KnobstickServiceImp sender = new KnobstickServiceImp(senderProps);
        SendEdocResult sent = sender.sendEdoc(
                "{\"from\":\"" + senderAgency + "\",\"servicetype\":\"eDoc\",\"messagetype\":\"edoc\"}", file);
        result("send", sent, "DocId=" + sent.getDocID());

        KnobstickServiceImp receiver = new KnobstickServiceImp(receiverProps);
        CountReceiveEdoc count = receiver.countReceiveEdoc("{\"servicetype\":\"eDoc\",\"messagetype\":\"edoc\"}");
        result("count", count, "count=" + count.getCount());
        GetReceivedEdocResult received = receiver.getReceivedEdocList(
                "{\"servicetype\":\"eDoc\",\"messagetype\":\"edoc\"}");
        String found = "";
        if (received.getKnobsticks() != null) {
            for (Knobstick k : received.getKnobsticks()) {
                if (k.getId().equals(sent.getDocID())) {
                    found = k.getId() + " from=" + k.getFrom() + " to=" + k.getTo() + " itemstatus=" + k.getStatus();
                }
            }
        }
        result("received", received, "found=" + found);
        GetEdocResult fetched = receiver.getEdoc("{\"filePath\":\"" + store + "\",\"docId\":\"" + sent.getDocID() + "\"}");
        result("fetch", fetched, "filePath=" + fetched.getFilePath());
        BasicResult processing = receiver.updateStatus(
                "{\"docId\":\"" + sent.getDocID() + "\",\"status\":\"processing\"}");
        result("processing", processing, "");
        BasicResult done = receiver.updateStatus("{\"docId\":\"" + sent.getDocID() + "\",\"status\":\"done\"}");
        result("done", done, "");

        GetSendEdocResult sentList = sender.getSentEdocList("{\"servicetype\":\"eDoc\",\"messagetype\":\"edoc\"}");
        String record2 = "";
        if (sentList.getStatusResult() != null) {
            for (StatusResult s : sentList.getStatusResult()) {
                if (sent.getDocID().equals(s.getSenderDocId())) {
                    record2 = "from=" + s.getFromCode() + " to=" + s.getToCode() + " receiveStatus=" + s.getReceiveStatus();
                }
            }
        }
        result("sent", sentList, record2);
    }
}
